"""Where owners' code runs: one origin per community, made from the COMMUNITY_PAGES_URL pattern.

A community's slug is a DNS label (lowercase letters, digits, single dashes, at most 60
characters), so it can stand in a host name: `https://{community}.offers.example.net` gives
`https://makers-guild.offers.example.net`. Two communities never share an origin, so one
owner's code never runs same-origin with another's pages, and none runs on the platform's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 60
PLACEHOLDER = "{community}"
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LONGEST = "a" * SLUG_MAX


class PatternError(ValueError):
    """The pattern cannot give every community an origin of its own (the message says why)."""


def _is_address(host: str) -> bool:
    """A slug of digits must not make an IP address (nor anything a browser reads as one)."""
    if host.rsplit(".", 1)[-1].isdigit():
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_slug(value: str) -> bool:
    return len(value) <= SLUG_MAX and SLUG.match(value) is not None


def _without_default_port(netloc: str, scheme: str) -> str:
    return netloc.removesuffix(f":{DEFAULT_PORTS[scheme]}")


@dataclass(frozen=True)
class PagesOrigins:
    """A community's origin is `scheme://{before}{slug}{after}`; `after` carries the port."""

    scheme: str
    before: str
    after: str

    @classmethod
    def parse(cls, pattern: str) -> PagesOrigins:
        scheme, sep, rest = pattern.strip().partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in DEFAULT_PORTS:
            raise PatternError(f"must be an absolute http(s) URL pattern such as https://{PLACEHOLDER}.offers.example.net, not {pattern!r}")
        netloc = rest.removesuffix("/")
        if any(c in netloc for c in "/?#@\\"):
            raise PatternError(f"must be an origin only (no path, query or user), not {pattern!r}")
        if netloc.count(PLACEHOLDER) != 1:
            raise PatternError(f"must contain {PLACEHOLDER} exactly once, in the host name: each community gets an origin of its own")
        before, _, after = netloc.lower().partition(PLACEHOLDER)
        host_after, colon, port = after.partition(":")
        if ":" in before or "{" in before + after or "}" in before + after:
            raise PatternError(f"must have {PLACEHOLDER} in the host name, not in the port")
        if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise PatternError(f"has an unusable port {port!r}")
        host = f"{before}{_LONGEST}{host_after}"
        labels = host.split(".")
        if len(host) > 253 or not all(_LABEL.match(label) for label in labels) or _is_address(f"{before}1{host_after}"):
            raise PatternError(
                f"must give every community a valid host name: {PLACEHOLDER} stands for up to {SLUG_MAX} "
                f"letters, digits and dashes, and a DNS label holds at most 63 (with it: {host!r})"
            )
        return cls(scheme, before, _without_default_port(after, scheme))

    def origin(self, slug: str) -> str:
        return f"{self.scheme}://{self.before}{slug}{self.after}"

    def host(self, slug: str) -> str:
        """The Host header a browser sends for this community's origin."""
        return f"{self.before}{slug}{self.after}"

    def sample_host(self) -> str:
        return f"{self.before}{_LONGEST}{self.after.partition(':')[0]}"

    def slug_of(self, host: str) -> str | None:
        """The community whose origin a request's Host header names; None for any other host."""
        host = _without_default_port(host.lower(), self.scheme)
        if not host.startswith(self.before) or not host.endswith(self.after):
            return None
        slug = host[len(self.before) : len(host) - len(self.after)]
        return slug if is_slug(slug) else None


def development_pattern(base_url: str) -> str:
    """The default: `{scheme}://{community}.localhost[:port]` with the platform's scheme and
    port. Browsers and curl resolve every `*.localhost` name to the loopback address, so it
    needs no DNS, and no two communities (nor the platform on 127.0.0.1) share a site."""
    scheme, _, rest = base_url.partition("://")
    netloc = rest.split("/", 1)[0].rpartition("@")[2]
    port = ""
    if not netloc.endswith("]") and ":" in netloc:
        port = ":" + netloc.rpartition(":")[2]
    return f"{scheme}://{PLACEHOLDER}.localhost{port}"


@lru_cache(maxsize=1)
def _suffix_list():
    from publicsuffixlist import (
        PublicSuffixList,  # loads the list it ships: once, at start-up
    )

    return PublicSuffixList()


def registrable_domain(host: str) -> str:
    """The site a browser puts a host in (eTLD+1 by the Public Suffix List): cookies with a
    Domain attribute and SameSite decisions reach across exactly this. An address is its own."""
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    return _suffix_list().privatesuffix(host) or host
