"""What the sandbox can produce, read from its source: every event type it emits and every kind
of object it makes. The conformance test fails when the scenario did not check one of them, so a
kind added later cannot go unchecked."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SANDBOX = Path(__file__).resolve().parents[2] / "stripe_sandbox"


def _calls(tree: ast.AST, name: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
            yield node


def _constant(node: ast.AST | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def declared() -> tuple[set[str], set[str], list[str]]:
    """(event types, object kinds, problems): from `_emit("type", ...)` and `_new("kind", ...)`
    calls and dict literals with an "object" key (plus "deleted <kind>" for deleted stubs).
    A call whose type is not a literal is a problem: its kinds could not be known."""
    events: set[str] = set()
    kinds: set[str] = set()
    problems: list[str] = []
    for path in sorted(SANDBOX.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for method, found in (("_emit", events), ("_new", kinds)):
            for call in _calls(tree, method):
                value = _constant(call.args[0]) if call.args else None
                if isinstance(value, str):
                    found.add(value)
                else:
                    problems.append(f"{path.name}:{call.lineno}: {method}() with a type that is not a string literal")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            entries = {_constant(k): v for k, v in zip(node.keys, node.values, strict=True) if k is not None}
            kind = _constant(entries.get("object"))
            if isinstance(kind, str):
                kinds.add(f"deleted {kind}" if _constant(entries.get("deleted")) is True else kind)
    return events, kinds, problems


def observed(values: Iterable[Any]) -> set[str]:
    """The object kinds in JSON values, nested ones included ("deleted <kind>" for deleted stubs)."""
    kinds: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            kind = value.get("object")
            if isinstance(kind, str):
                kinds.add(f"deleted {kind}" if value.get("deleted") is True else kind)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return kinds


# Statuses in Stripe's published types that the sandbox never gives an object, and why. Every
# other published status of every kind of object the sandbox makes must be checked in the
# scenario; one listed here must never appear (then the sandbox models it: delete it here).
NOT_MODELLED: dict[tuple[str, str], str] = {
    ("balance_transaction", "available"): "the sandbox keeps no balance: a dispute's funds never become available",
    ("invoice", "uncollectible"): "after the last retry the sandbox ends the subscription and leaves the invoice open",
    ("payment_intent", "canceled"): "nothing cancels an intent in the sandbox (an expired session's is left as it was)",
    ("payment_intent", "requires_action"): "no card or bank account of the sandbox asks for authentication",
    ("payment_intent", "requires_capture"): "checkout's intents capture automatically",
    ("payment_intent", "requires_confirmation"): "checkout confirms its intents itself",
    ("refund", "requires_action"): "only for refunds to payment methods that need the customer's details",
    ("subscription", "unpaid"): "after the last retry the sandbox cancels the subscription (Stripe's default)",
}


def statuses(values: Iterable[Any]) -> set[tuple[str, str]]:
    """(object kind, status) of every Stripe object in JSON values, nested ones included."""
    found: set[tuple[str, str]] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            kind, status = value.get("object"), value.get("status")
            if isinstance(kind, str) and isinstance(status, str):
                found.add((kind, status))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found
