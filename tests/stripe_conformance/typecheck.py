"""Checks JSON values against Stripe's published TypeScript types with one run of the compiler.

For every sample, a generated `check.ts` holds:
- the value as an object literal assigned to its type (`const s3: Stripe.Charge = {...}`): excess
  properties, missing required ones and wrong types are compile errors;
- node-by-node checks (helpers.ts) that name every excess, missing and mistyped field at once,
  since an object literal's error stops at its first excess property and lists four missing ones.
Each line of check.ts is mapped back to (sample, JSON path), so a diagnostic becomes a Finding
that names the object or event and the field. The literal's own diagnostics are reported only
for samples the node checks found nothing wrong with (they are the safety net, not the report).

Events are checked against their own member of the `Stripe.Event` union (`EventOf<'invoice.paid'>`
is `Stripe.InvoicePaidEvent`), with `previous_attributes` allowed to hold only the changed keys of
a nested hash, as Stripe sends them (the published `Partial<T>` is one level deep).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.stripe_conformance.scenario import Sample
from tests.stripe_conformance.toolchain import Toolchain

HELPERS = Path(__file__).with_name("helpers.ts")
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "skipLibCheck": True,
        "noErrorTruncation": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "types": [],
    },
    "files": ["check.ts"],
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """One disagreement between a sample and the published types."""

    label: str  # the sample's origin
    anchor: str  # the `object` of the nearest enclosing Stripe object ("charge", "invoice (previous_attributes)")
    where: str  # the field's path inside that object ("outcome.risk_level", "lines.data[].period")
    kind: str  # excess | missing | type | shape | includable | literal
    detail: str = ""

    @property
    def key(self) -> str:
        """A description without ids or values: the same mismatch in many samples is one key."""
        field = f"{self.anchor}.{self.where}" if self.where else self.anchor
        what = {
            "excess": "sent, but not in the published type",
            "missing": "required by the published type, not sent",
        }.get(self.kind, self.detail)
        return f"{field}: {what}"


def anchor_of(value: Any, path: Path_) -> tuple[str, str]:
    """The nearest enclosing Stripe object of a path (list envelopes below the root do not count;
    an event's previous_attributes count as its object's) and the path inside it, indices as []."""
    anchor, start = "?", 0
    node, event = value, None
    for depth in range(len(path) + 1):
        if isinstance(node, dict) and isinstance(node.get("object"), str) and (depth == 0 or node["object"] != "list"):
            anchor, start = node["object"], depth
            event = (depth, node) if node["object"] == "event" else None
        if event and depth == event[0] + 2 and path[event[0] : depth] == ("data", "previous_attributes"):
            kind = (event[1].get("data") or {}).get("object", {}).get("object")
            anchor, start = f"{kind} (previous_attributes)", depth
        if depth == len(path):
            break
        step = path[depth]
        if isinstance(node, dict) and isinstance(step, str):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            node = None
    where = ""
    for step in path[start:]:
        where += "[]" if isinstance(step, int) else (f".{step}" if where else step)
    return anchor, where


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.at: dict[int, tuple[int, Path_, str]] = {}  # line number -> (sample, path, what the line checks)
        self._aliases = 0

    def emit(self, text: str, sample: int | None = None, path: Path_ = (), check: str = "") -> None:
        self.lines.append(text)
        if sample is not None:
            self.at[len(self.lines)] = (sample, path, check)

    def alias(self) -> str:
        self._aliases += 1
        return f"N{self._aliases}"

    def literal(self, i: int, value: Any, path: Path_, lead: str, trail: str, depth: int) -> None:
        pad = "  " * depth
        if isinstance(value, dict) and value:
            self.emit(f"{pad}{lead}{{", i, path, "literal")
            for key, item in value.items():
                self.literal(i, item, (*path, key), f"{json.dumps(key)}: ", ",", depth + 1)
            self.emit(f"{pad}}}{trail}", i, path, "literal")
        elif isinstance(value, list) and value:
            self.emit(f"{pad}{lead}[", i, path, "literal")
            for n, item in enumerate(value):
                self.literal(i, item, (*path, n), "", ",", depth + 1)
            self.emit(f"{pad}]{trail}", i, path, "literal")
        elif isinstance(value, str) and path and str(path[-1]).endswith("_decimal"):
            # Stripe's decimal strings (`unit_amount_decimal`, ...) are `Stripe.Decimal` in the types
            self.emit(f"{pad}{lead}dec({json.dumps(value)}){trail}", i, path, "literal")
        else:
            self.emit(f"{pad}{lead}{json.dumps(value)}{trail}", i, path, "literal")

    def nodes(self, i: int, declared: str, value: Any, path: Path_, partial: bool = False, event: str = "") -> None:
        """Checks for a value and everything in it. `partial`: inside previous_attributes, where a
        nested hash holds only what changed (arrays are sent whole). `event`: the node alias of
        the event whose `data` this is."""
        if isinstance(value, dict):
            self.emit(f"none<NotObject<{declared}>>();", i, path, "shape")
            node = self.alias()
            kind = value.get("object")
            narrow = json.dumps(kind) if isinstance(kind, str) else "never"
            deleted = str(value.get("deleted") is True).lower()
            is_event = kind == "event" and isinstance(value.get("type"), str)
            event_type = json.dumps(value["type"]) if is_event else "never"
            self.emit(f"type {node} = Node<{declared}, {narrow}, {deleted}, {event_type}>;")
            keys = " | ".join(json.dumps(k) for k in value) or "never"
            self.emit(f"none<Excess<{node}, {keys}>>();", i, path, "excess")
            if not partial:
                self.emit(f"none<Missing<{node}, {keys}>>();", i, path, "missing")
            for key, item in value.items():
                field = f"Field<{node}, {json.dumps(key)}>"
                if event and key == "previous_attributes":
                    self.nodes(i, f'Field<{node}, "object">', item, (*path, key), partial=True)
                else:
                    data_of_event = node if kind == "event" and key == "data" else ""
                    self.nodes(i, field, item, (*path, key), partial, event=data_of_event)
        elif isinstance(value, list):
            self.emit(f"none<NotArray<{declared}>>();", i, path, "shape")
            if value:
                element = self.alias()
                self.emit(f"type {element} = Item<{declared}>;")
                for n, item in enumerate(value):
                    self.nodes(i, element, item, (*path, n))
        else:
            self.emit(f"is<Wire<{declared}>>({json.dumps(value)});", i, path, "type")


def generate(samples: list[Sample], includable: dict[str, tuple[str, set[str]]]) -> _Writer:
    """check.ts for the samples, plus a check that each field listed as includable is an
    optional field of its type (as the published types show includable fields)."""
    w = _Writer()
    w.emit("import Stripe from 'stripe';")
    w.emit(
        "import { none, is, dec, type Node, type Field, type Item, type Excess, type Missing, type NotObject, "
        "type NotArray, type Wire, type EventOf, type NotEventType, type Delivered, type OptionalField } "
        "from './helpers.js';"
    )
    for n, (ts_type, fields) in enumerate(includable.values()):
        for name in sorted(fields):
            declaration = f"const includable{n}_{name}: OptionalField<{ts_type}, {json.dumps(name)}> = true;"
            w.emit(declaration, -1, (ts_type, name), "includable")
    for i, sample in enumerate(samples):
        w.emit(f"// {i}: {sample.label}")
        if sample.event_type is not None:
            root = f"Delivered<EventOf<{json.dumps(sample.event_type)}>>"
            w.emit(f"none<NotEventType<{json.dumps(sample.event_type)}>>();", i, (), "event")
        else:
            root = sample.ts_type
        w.emit(f"type R{i} = {root};")
        w.literal(i, sample.value, (), f"const s{i}: R{i} = ", ";", 0)
        w.nodes(i, f"R{i}", sample.value, ())
    return w


_DIAGNOSTIC = re.compile(r"^(?P<file>[^()]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): (?P<message>.*)$")
_NEVER_CONSTRAINT = re.compile(r"^Type '(?P<type>.*)' does not satisfy the constraint 'never'\.")
_PARAMETER = re.compile(r"is not assignable to parameter of type '(?P<type>.*)'\.$")


def _diagnostics(output: str) -> list[tuple[str, int, str, str]]:
    found: list[tuple[str, int, str, str]] = []
    for text in output.splitlines():
        match = _DIAGNOSTIC.match(text)
        if match:
            found.append((Path(match["file"]).name, int(match["line"]), match["code"], match["message"]))
        elif found and text.startswith(" "):
            file, line, code, message = found[-1]
            found[-1] = (file, line, code, message + "\n" + text.strip())
    return found


def _names(message: str) -> list[str]:
    match = _NEVER_CONSTRAINT.match(message)
    if not match:
        return []
    return [part.strip().strip('"') for part in match["type"].split(" | ")]


def _shape(value: Any) -> Any:
    """A value with what the types cannot tell apart made equal: numbers, and strings with a digit,
    a capital, `@` or `://` (ids, timestamps, emails, URLs; enum values are lower-case words)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return 0
    if re.search(r"[A-Z0-9@]|://", value):
        return "S"
    return value


def distinct(samples: list[Sample]) -> list[Sample]:
    """One sample of each shape (the same kind of object with other ids, amounts and times checks the same)."""
    seen: dict[str, Sample] = {}
    for sample in samples:
        key = json.dumps([sample.ts_type, sample.event_type, sorted(sample.expanded), _shape(sample.value)])
        seen.setdefault(key, sample)
    return list(seen.values())


def check(toolchain: Toolchain, samples: list[Sample], includable: dict[str, tuple[str, set[str]]]) -> list[Finding]:
    """Every disagreement between the samples and the types, in one compiler run."""
    samples = distinct(samples)
    w = generate(samples, includable)
    with toolchain.workdir() as work:
        shutil.copy(HELPERS, work / "helpers.ts")
        (work / "tsconfig.json").write_text(json.dumps(TSCONFIG))
        (work / "check.ts").write_text("\n".join(w.lines) + "\n")
        output = toolchain.tsc(work)
    node_findings: dict[int, list[Finding]] = {}
    literal_findings: dict[int, list[Finding]] = {}
    for file, line, code, message in _diagnostics(output):
        if file != "check.ts" or line not in w.at:
            raise AssertionError(f"the generated check does not compile ({file}:{line} {code}): {message}")
        i, path, what = w.at[line]
        if what == "includable":
            raise AssertionError(f"{path[0]}.{path[1]} is listed as includable, but is no optional field: {message}")
        sample = samples[i]
        found: list[Finding] = []
        if what in ("excess", "missing"):
            for name in _names(message):
                found.append(Finding(sample.label, *anchor_of(sample.value, (*path, name)), what))
        elif what == "type":
            parameter = _PARAMETER.search(message.splitlines()[0])
            expected = parameter["type"] if parameter else message
            if expected.startswith("Wire<") and expected.endswith(">"):  # tsc names the helper, not what it gives
                expected = expected[len("Wire<") : -1]
            found.append(Finding(sample.label, *anchor_of(sample.value, path), "type", f"expected {expected}"))
        elif what in ("shape", "event"):
            shape = _NEVER_CONSTRAINT.match(message)
            detail = shape["type"].strip("'\"") if shape else message
            found.append(Finding(sample.label, *anchor_of(sample.value, path), "shape", f"sent {detail}"))
        else:
            found.append(Finding(sample.label, *anchor_of(sample.value, path), "literal", f"{code} {message}"))
        (literal_findings if what == "literal" else node_findings).setdefault(i, []).extend(found)
        if what not in ("excess", "missing", "type", "shape", "event", "literal"):
            raise AssertionError(f"unknown check {what!r}")
    findings = [f for group in node_findings.values() for f in group]
    for i, group in literal_findings.items():
        if i not in node_findings:
            findings.extend(group)
    return findings


def includable_findings(samples: Iterable[Sample], includable: dict[str, tuple[str, set[str]]]) -> list[Finding]:
    """Includable fields appear only when the request expanded them (an expand[] path that is
    the field's path or goes on through it), and never in an event."""
    findings: list[Finding] = []
    for sample in samples:
        for path, node, in_event in _objects(sample.value, (), False):
            kind = node.get("object")
            fields = includable[kind][1] if isinstance(kind, str) and kind in includable else set()
            for name in sorted(fields):
                field = ".".join([str(step) for step in path if isinstance(step, str)] + [name])
                asked = any(p == field or p.startswith(field + ".") for p in sample.expanded)
                expanded = not in_event and asked
                if name in node and not expanded:
                    detail = f"includable, sent {'in an event' if in_event else 'without expand[]'}"
                elif expanded and name not in node:
                    detail = f"includable, not sent though expand[]={name} asked for it"
                else:
                    continue
                findings.append(Finding(sample.label, *anchor_of(sample.value, (*path, name)), "includable", detail))
    return findings


def _objects(value: Any, path: Path_, in_event: bool) -> Iterable[tuple[Path_, dict[str, Any], bool]]:
    if isinstance(value, dict):
        in_event = in_event or value.get("object") == "event"
        yield path, value, in_event
        for key, item in value.items():
            yield from _objects(item, (*path, key), in_event)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _objects(item, (*path, n), in_event)
