"""The floors of docs/DESIGN.md hold: a domain package imports only from the floors below it,
and the Stripe sandbox (a tool) imports nothing of the product."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# From the ground up, as docs/DESIGN.md lists them.
FLOORS = ["mail", "accounts", "hubs", "offers", "billing", "affiliates", "content", "checkout", "members", "notifications", "campaigns"]


def _imports(package: Path) -> set[tuple[Path, str]]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((path, node.module))
            elif isinstance(node, ast.Import):
                found.update((path, alias.name) for alias in node.names)
    return found


def test_domain_packages_import_only_downwards():
    upward = []
    for level, floor in enumerate(FLOORS):
        for path, module in _imports(ROOT / "community" / floor):
            parts = module.split(".")
            if parts[0] == "community" and len(parts) > 1 and parts[1] in FLOORS and FLOORS.index(parts[1]) > level:
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert upward == []


def test_the_sandbox_imports_nothing_of_the_product():
    assert [f"{p.relative_to(ROOT)}: {m}" for p, m in _imports(ROOT / "stripe_sandbox") if m.split(".")[0] == "community"] == []
