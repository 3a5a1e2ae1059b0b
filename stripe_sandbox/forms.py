"""Stripe's bracket notation (`line_items[0][price_data][currency]=usd`) and typed access to it.

`parse_form` turns a form-encoded body or a query string into nested dicts and lists of
strings; `Params` reads fields out of that tree with Stripe's validation errors, naming each
parameter the way Stripe does (`line_items[0][quantity]`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from stripe_sandbox.errors import ParameterError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(raw: bytes | str) -> dict[str, Any]:
    """`a[b][0]=x&a[c]=y&e[]=z` -> {"a": {"b": {"0": "x"}, "c": "y"}, "e": {"0": "z"}}.

    Arrays stay hashes with numeric keys until `Params.list` reads them, so that metadata keys
    that happen to be digits keep their names."""
    text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(key)
        if not match:
            raise ParameterError(f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: dict[str, Any] = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":  # `expand[]=x`: append to a list kept under a numeric key
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                if part in node:
                    raise ParameterError(f"Duplicate parameter: {key}", param=key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ParameterError(f"Invalid parameter: {key} mixes a value and a hash", param=key)
                node = child
    return root


class Params:
    """Typed, validated reads from a parsed request, with Stripe's parameter names in errors."""

    def __init__(self, data: Any, prefix: str = "") -> None:
        if data == "":  # `param=` is Stripe's way to send an empty hash
            data = {}
        if not isinstance(data, dict):
            raise ParameterError(f"Invalid hash: {prefix}", param=prefix or None, code="parameter_invalid_hash")
        self.data: dict[str, Any] = data
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}[{key}]" if self.prefix else key

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def only(self, *allowed: str, ignored: tuple[str, ...] = ()) -> None:
        """Reject parameters this endpoint does not know (Stripe answers them with a 400). A
        request's top-level `expand` is every endpoint's (see expand.py)."""
        for key in self.data:
            if key not in allowed and key not in ignored and not (key == "expand" and not self.prefix):
                raise ParameterError(
                    f"Received unknown parameter: {self.name(key)} (the sandbox does not model it)",
                    param=self.name(key),
                    code="parameter_unknown",
                )

    def missing(self, key: str) -> ParameterError:
        return ParameterError(
            f"Missing required param: {self.name(key)}.", param=self.name(key), code="parameter_missing"
        )

    def str(
        self, key: str, *, required: bool = False, max_length: int = 5000, default: str | None = None
    ) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise self.missing(key)
            return default
        if not isinstance(value, str):
            raise ParameterError(
                f"Invalid string: {self.name(key)}", param=self.name(key), code="parameter_invalid_string"
            )
        if len(value) > max_length:
            raise ParameterError(
                f"Invalid string: {self.name(key)}; must be at most {max_length} characters",
                param=self.name(key),
                code="parameter_invalid_string_too_long",
            )
        return value

    def int(
        self, key: str, *, required: bool = False, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        text = self.str(key, required=required)
        if text is None:
            return None
        if not re.fullmatch(r"-?\d{1,18}", text):
            raise ParameterError(f"Invalid integer: {text}", param=self.name(key), code="parameter_invalid_integer")
        value = int(text)
        if minimum is not None and value < minimum:
            raise ParameterError(
                f"This value must be greater than or equal to {minimum}.",
                param=self.name(key),
                code="parameter_invalid_integer",
            )
        if maximum is not None and value > maximum:
            raise ParameterError(
                f"This value must be less than or equal to {maximum}.",
                param=self.name(key),
                code="parameter_invalid_integer",
            )
        return value

    def decimal(self, key: str, *, required: bool = False) -> float | None:
        text = self.str(key, required=required)
        if text is None:
            return None
        if not re.fullmatch(r"\d{1,12}(\.\d{1,12})?", text):
            raise ParameterError(f"Invalid decimal: {text}", param=self.name(key), code="parameter_invalid_decimal")
        return float(text)

    def bool(self, key: str, *, default: bool | None = None) -> bool | None:
        text = self.str(key)
        if text is None:
            return default
        if text not in ("true", "false"):
            raise ParameterError(f"Invalid boolean: {text}", param=self.name(key), code="parameter_invalid_boolean")
        return text == "true"

    def enum(
        self, key: str, choices: tuple[str, ...], *, required: bool = False, default: str | None = None
    ) -> str | None:
        text = self.str(key, required=required)
        if text is None:
            return default
        if text not in choices:
            raise ParameterError(
                f"Invalid {self.name(key)}: must be one of {', '.join(choices)}",
                param=self.name(key),
                code="parameter_invalid_string",
            )
        return text

    def sub(self, key: str) -> Params:
        return Params(self.data.get(key) or {}, self.name(key))

    def list(self, key: str) -> list[Params]:
        value = self.data.get(key)
        if value is None or value == "":
            return []
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise ParameterError(f"Invalid array: {self.name(key)}", param=self.name(key), code="parameter_invalid_array")
        return [Params(value[k], f"{self.name(key)}[{k}]") for k in sorted(value, key=int)]

    def metadata(self, key: str = "metadata") -> dict[str, str] | None:
        """Stripe's metadata rules: at most 50 keys, keys up to 40 and values up to 500 characters.

        Returns None when absent; an empty value (`metadata=`) is an empty dict; a key sent
        with an empty value means "unset this key" to updates (kept here as "")."""
        if key not in self.data:
            return None
        value = self.data[key]
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise ParameterError(f"Invalid hash: {self.name(key)}", param=self.name(key), code="parameter_invalid_hash")
        if len(value) > 50:
            raise ParameterError("Metadata can have at most 50 keys.", param=self.name(key))
        for k, v in value.items():
            if len(k) > 40:
                raise ParameterError(f"Metadata keys can be at most 40 characters: {k}", param=f"{self.name(key)}[{k}]")
            if not isinstance(v, str) or len(v) > 500:
                raise ParameterError(
                    f"Metadata values must be strings of at most 500 characters: {k}", param=f"{self.name(key)}[{k}]"
                )
        return dict(value)
