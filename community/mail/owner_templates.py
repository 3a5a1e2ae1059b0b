"""Owner-written email templates (an offer's confirmation email), rendered in Jinja2's sandbox.

Owners are not trusted with the server: the sandbox refuses attribute tricks, the variables are
plain strings, and a template that fails to render falls back to the default one, so a broken
template never stops a purchase from being confirmed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from community.errors import Invalid

log = logging.getLogger("community.mail")

# The variables an owner may use, documented in the API (offer confirmation_subject / _body).
CONFIRMATION_VARIABLES = {
    "buyer_name": "the buyer's name (may be empty)",
    "buyer_email": "the buyer's email address",
    "offer_title": "the offer's title",
    "amount": "what was paid, formatted with its currency (for example 49.00 USD; 0 for free offers)",
    "community_name": "the community's name",
    "access_url": "where the buyer opens what they bought",
}

DEFAULT_CONFIRMATION_SUBJECT = "Your purchase of {{ offer_title }}"
DEFAULT_CONFIRMATION_BODY = (
    "Hello {{ buyer_name or buyer_email }},\n\n"
    "Thank you for your purchase of {{ offer_title }} ({{ amount }}) in {{ community_name }}.\n\n"
    "Open it here: {{ access_url }}\n"
)

_env = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


def check_template(source: str, field: str) -> str:
    """Refuse, when the owner saves it, a template that cannot even be parsed."""
    try:
        _env.parse(source)
    except TemplateError as exc:
        raise Invalid(f"is not a valid template: {exc.message or exc}", field=field) from None
    return source


def render_owner_template(source: str, default: str, variables: Mapping[str, str]) -> str:
    """Plain text out (the email's HTML part escapes it)."""
    context = {name: str(variables.get(name, "")) for name in CONFIRMATION_VARIABLES}
    for template in (source, default) if source.strip() else (default,):
        try:
            return _env.from_string(template).render(**context)
        except TemplateError as exc:  # a runtime error (e.g. a refused attribute) in the owner's template
            log.warning("owner template failed, using the default: %s", exc)
    return ""


def render_confirmation(subject: str, body: str, variables: Mapping[str, str], *, fallback_subject: str) -> tuple[str, str]:
    """An offer's confirmation email (subject, body) as the buyer gets it: the owner's templates,
    the default where a field is blank or fails to render; the subject on one line, at most
    200 characters, `fallback_subject` if nothing is left of it. The console's preview shows
    exactly this."""
    rendered = render_owner_template(subject, DEFAULT_CONFIRMATION_SUBJECT, variables)
    return " ".join(rendered.split())[:200] or fallback_subject, render_owner_template(body, DEFAULT_CONFIRMATION_BODY, variables)


# Catalogue messages edited by an owner: every variable must be one the message offers, so a
# template that renders with the sample data renders at send time too (checked at save).
_strict = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True, undefined=StrictUndefined)


def render_strict(source: str, variables: Mapping[str, object]) -> str:
    """Raises TemplateError (the caller refuses the save, or falls back to the default)."""
    return _strict.from_string(source).render(**variables)


def check_renders(source: str, field: str, variables: Mapping[str, object]) -> str:
    """Refuse at save a template that cannot be parsed or cannot render with the offered variables."""
    try:
        render_strict(source, variables)
    except UndefinedError as exc:
        raise Invalid(f"cannot render: {exc.message} (use only the variables listed)", field=field) from None
    except TemplateError as exc:
        raise Invalid(f"is not a valid template: {exc.message or exc}", field=field) from None
    return source
