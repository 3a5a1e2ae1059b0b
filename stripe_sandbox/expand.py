"""`expand[]` as Stripe answers it, for every response the sandbox gives.

Two kinds of fields take part (Stripe's API reference marks them "expandable" and "includable"):
an expandable field holds the id of a related object and becomes that object when asked for; an
includable field (`invoice.payments`, a checkout session's `line_items`, a charge's `refunds`) is
absent from the response unless asked for, and never in an event's payload. Paths go through
sub-hashes and arrays with dots (`parent.subscription_details.subscription`), through a list's
`data` (`payments.data.payment.payment_intent`), and a list endpoint's paths start with `data`.
At most four levels. Any other path (an unknown field, one that is neither expandable nor
includable, a list without `data`) answers 400 before the request changes anything, as Stripe's
does.

The schema below lists, for each kind of object the sandbox makes, the fields its published
types (npm `stripe` for the pinned API version) type as `string | Object` or mark includable.
A reference to a kind of object the sandbox never makes (an application, a test clock) is
always null here: expanding it is allowed and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stripe_sandbox.errors import ParameterError
from stripe_sandbox.forms import Params

MAX_DEPTH = 4


@dataclass(frozen=True)
class Obj:
    """An object of one of the kinds in SCHEMAS."""

    kind: str


@dataclass(frozen=True)
class Ref:
    """An id that expands into the object it names. Kind None: one the sandbox never makes (the
    field is always null here); a kind missing from SCHEMAS: one the sandbox names by id but does
    not keep (products, prices, discounts), which it cannot expand."""

    kind: str | None


@dataclass(frozen=True)
class Include:
    """Absent unless asked for. `produce` names the state's method that makes it from the
    object holding it (None: a field the sandbox does not model); `then` is what it is, for
    longer paths."""

    produce: str | None
    then: Node | None = None


@dataclass(frozen=True)
class Hash:
    """A sub-hash whose own fields may expand."""

    fields: dict[str, Node]


@dataclass(frozen=True)
class ListOf:
    """A list object: paths go on through `data`."""

    kind: str


@dataclass(frozen=True)
class Each:
    """An array: a path applies to each element."""

    item: Node


Node = Obj | Ref | Include | Hash | ListOf | Each

NO_OBJECT = Ref(None)
PRODUCT, PRICE, DISCOUNT = Ref("product"), Ref("price"), Ref("discount")
_TRANSFER_DATA = Hash({"destination": Ref("account")})

SCHEMAS: dict[str, dict[str, Node]] = {
    "account": {"external_accounts": Include(None)},
    "account_link": {},
    "customer": {
        "default_source": NO_OBJECT,
        "invoice_settings": Hash({"default_payment_method": Ref("payment_method")}),
        "test_clock": NO_OBJECT,
        "subscriptions": Include(None),
        "sources": Include(None),
        "tax_ids": Include(None),
        "cash_balance": Include(None),
        "tax": Include(None),
    },
    "coupon": {"applies_to": Include(None), "currency_options": Include(None)},
    "payment_method": {"customer": Ref("customer")},
    "payment_intent": {
        "application": NO_OBJECT,
        "customer": Ref("customer"),
        "latest_charge": Ref("charge"),
        "on_behalf_of": Ref("account"),
        "payment_method": Ref("payment_method"),
        "payment_record": NO_OBJECT,
        "review": NO_OBJECT,
        "source": NO_OBJECT,
        "transfer_data": _TRANSFER_DATA,
    },
    "charge": {
        "application": NO_OBJECT,
        "application_fee": NO_OBJECT,
        "balance_transaction": NO_OBJECT,
        "customer": Ref("customer"),
        "failure_balance_transaction": NO_OBJECT,
        "on_behalf_of": Ref("account"),
        "payment_intent": Ref("payment_intent"),
        "review": NO_OBJECT,
        "source_transfer": NO_OBJECT,
        "transfer": NO_OBJECT,
        "transfer_data": _TRANSFER_DATA,
        "refunds": Include("_include_charge_refunds", ListOf("refund")),
    },
    "refund": {
        "balance_transaction": NO_OBJECT,
        "charge": Ref("charge"),
        "customer": Ref("customer"),
        "failure_balance_transaction": NO_OBJECT,
        "payment_intent": Ref("payment_intent"),
        "payment_method": Ref("payment_method"),
        "source_transfer_reversal": NO_OBJECT,
        "transfer_reversal": NO_OBJECT,
    },
    "dispute": {
        "charge": Ref("charge"),
        "payment_intent": Ref("payment_intent"),
    },
    "checkout.session": {
        "customer": Ref("customer"),
        "invoice": Ref("invoice"),
        "payment_intent": Ref("payment_intent"),
        "payment_link": NO_OBJECT,
        "setup_intent": NO_OBJECT,
        "subscription": Ref("subscription"),
        "discounts": Each(Hash({"coupon": Ref("coupon"), "promotion_code": NO_OBJECT})),
        "line_items": Include("_include_session_line_items", ListOf("item")),
    },
    "item": {"price": Hash({"product": PRODUCT})},
    "billing_portal.session": {"configuration": Ref("billing_portal.configuration")},
    "event": {},
    "subscription": {
        "application": NO_OBJECT,
        "customer": Ref("customer"),
        "default_payment_method": Ref("payment_method"),
        "default_source": NO_OBJECT,
        "discounts": Each(DISCOUNT),
        "items": ListOf("subscription_item"),
        "latest_invoice": Ref("invoice"),
        "on_behalf_of": Ref("account"),
        "pending_setup_intent": NO_OBJECT,
        "schedule": NO_OBJECT,
        "test_clock": NO_OBJECT,
        "transfer_data": _TRANSFER_DATA,
        "invoice_settings": Hash({"account_tax_ids": Each(NO_OBJECT), "issuer": Hash({"account": Ref("account")})}),
    },
    "subscription_item": {
        "discounts": Each(DISCOUNT),
        "price": Hash({"product": PRODUCT}),
        "plan": Hash({"product": PRODUCT}),
    },
    "invoice": {
        "account_tax_ids": Each(NO_OBJECT),
        "application": NO_OBJECT,
        "customer": Ref("customer"),
        "default_payment_method": Ref("payment_method"),
        "default_source": NO_OBJECT,
        "discounts": Each(DISCOUNT),
        "latest_revision": Ref("invoice"),
        "on_behalf_of": Ref("account"),
        "test_clock": NO_OBJECT,
        "lines": ListOf("line_item"),
        "parent": Hash({"subscription_details": Hash({"subscription": Ref("subscription")})}),
        "total_discount_amounts": Each(Hash({"discount": DISCOUNT})),
        "issuer": Hash({"account": Ref("account")}),
        "payments": Include("_include_invoice_payments", ListOf("invoice_payment")),
        "confirmation_secret": Include("_include_confirmation_secret"),
    },
    "line_item": {
        "discounts": Each(DISCOUNT),
        "discount_amounts": Each(Hash({"discount": DISCOUNT})),
        "subscription": Ref("subscription"),
        "pricing": Hash({"price_details": Hash({"price": PRICE})}),
    },
    "invoice_payment": {
        "invoice": Ref("invoice"),
        "payment": Hash(
            {"payment_intent": Ref("payment_intent"), "charge": Ref("charge"), "payment_record": NO_OBJECT}
        ),
    },
}


def _cannot(segment: str) -> ParameterError:
    return ParameterError(f"This property cannot be expanded ({segment}).")


def paths(p: Params) -> list[str]:
    """The request's `expand[]` paths (an array of strings, as the SDKs send it)."""
    if "expand" not in p:
        return []
    raw = p.data["expand"]
    if raw == "":
        return []
    if not isinstance(raw, dict) or not all(k.isdigit() for k in raw):
        raise ParameterError("Invalid array: expand", param="expand", code="parameter_invalid_array")
    found = []
    for key in sorted(raw, key=int):
        value = raw[key]
        if not isinstance(value, str):
            raise ParameterError(f"Invalid string: expand[{key}]", param=f"expand[{key}]", code="parameter_invalid_string")
        found.append(value)
    return found


def root(returns: str) -> Node:
    """The node of a route's response: "invoice", or "list:invoice" for a list endpoint."""
    return ListOf(returns[5:]) if returns.startswith("list:") else Obj(returns)


def check(returns: str, expand: list[str]) -> None:
    """400 for any path Stripe would refuse (or the sandbox cannot answer), before anything runs."""
    for path in expand:
        segments = path.split(".")
        if len(segments) > MAX_DEPTH:
            raise ParameterError("You cannot expand more than 4 levels of a property.")
        node: Node = root(returns)
        for segment in segments:
            node = _step(_unwrap(node), segment, path)
        if not isinstance(_unwrap_each(node), (Ref, Include)):
            raise _cannot(segments[-1])


def _unwrap_each(node: Node | None) -> Node | None:
    while isinstance(node, Each):
        node = node.item
    return node


def _unwrap(node: Node) -> Node:
    """What a path goes on through: an expanded reference or an included field's content."""
    node = _unwrap_each(node) or node
    if isinstance(node, Ref):
        return Obj(node.kind) if node.kind else node
    if isinstance(node, Include):
        return node.then or node
    return node


def _step(node: Node, segment: str, path: str) -> Node:
    if isinstance(node, ListOf):
        if segment != "data":
            raise _cannot(segment)
        return Obj(node.kind)
    if isinstance(node, Ref):  # through a reference the sandbox never fills
        raise ParameterError(f"The sandbox does not model expanding {path}.", param="expand")
    if isinstance(node, Obj):
        fields = SCHEMAS.get(node.kind, {})  # a kind not listed expands nothing
    elif isinstance(node, Hash):
        fields = node.fields
    else:  # inside an included value that has no expandable fields
        raise _cannot(segment)
    found = fields.get(segment)
    if found is None:
        raise _cannot(segment)
    inner = _unwrap_each(found)
    if isinstance(inner, Include) and inner.produce is None:
        raise ParameterError(f"The sandbox does not model the includable field {path}.", param="expand")
    if isinstance(inner, Ref) and inner.kind is not None and inner.kind not in SCHEMAS:
        raise ParameterError(f"The sandbox does not keep {inner.kind} objects: it cannot expand {path}.", param="expand")
    return found


# ---- applying checked paths to a response ------------------------------------------------------------

Lookup = Callable[[str, str], Any]  # (kind, id) -> the object as the API shows it, or None
Produce = Callable[[str, dict[str, Any]], Any]  # (method name, holder) -> the included value


def apply(body: Any, returns: str, expand: list[str], lookup: Lookup, produce: Produce) -> Any:
    """The response with every (checked) path expanded; `body` is a copy the caller owns."""
    for path in expand:
        body = _apply(root(returns), body, path.split("."), lookup, produce)
    return body


def _apply(node: Node, value: Any, segments: list[str], lookup: Lookup, produce: Produce) -> Any:
    if isinstance(node, Each):
        return [_apply(node.item, v, segments, lookup, produce) for v in value] if isinstance(value, list) else value
    if isinstance(node, Ref):
        if isinstance(value, str) and node.kind:
            value = lookup(node.kind, value) or value
        node = Obj(node.kind) if node.kind else node
    if not segments or not isinstance(value, dict):
        return value
    if isinstance(node, ListOf):
        value["data"] = [_apply(Obj(node.kind), item, segments[1:], lookup, produce) for item in value.get("data", [])]
        return value
    fields = SCHEMAS[node.kind] if isinstance(node, Obj) else node.fields  # type: ignore[union-attr]
    name, rest = segments[0], segments[1:]
    child = fields[name]
    if isinstance(child, Include):
        if name not in value:
            assert child.produce is not None
            value[name] = produce(child.produce, value)
        if rest and child.then is not None:
            value[name] = _apply(child.then, value[name], rest, lookup, produce)
        return value
    if name in value:
        value[name] = _apply(child, value[name], rest, lookup, produce)
    return value
