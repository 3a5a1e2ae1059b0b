"""Stripe's published types and the TypeScript compiler, fetched with npm into a cache outside the repo.

The official `stripe` npm package of the API version the Python SDK sends carries the types
compiled from Stripe's OpenAPI spec. Both packages are installed once into
`$COMMUNITY_STRIPE_TYPES_CACHE` (default `~/.cache/community/stripe-types-<version>`) and reused;
a lock keeps two test runs from installing at the same time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STRIPE_NPM_VERSION = "23.1.0"  # pins API version 2026-10-28.endive, as stripe-python 16.1 does
TYPESCRIPT_VERSION = "7.0.2"
PACKAGES = {"stripe": STRIPE_NPM_VERSION, "typescript": TYPESCRIPT_VERSION}


class Unavailable(Exception):
    """npm or node is missing, or the registry cannot be reached."""


def cache_dir() -> Path:
    configured = os.environ.get("COMMUNITY_STRIPE_TYPES_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "community" / f"stripe-types-{STRIPE_NPM_VERSION}"


@dataclass(frozen=True)
class Toolchain:
    root: Path  # holds node_modules/stripe and node_modules/typescript

    @property
    def stripe_package(self) -> Path:
        return self.root / "node_modules" / "stripe"

    def npm_api_version(self) -> str:
        """The API version the npm package pins (`ApiVersion` in its compiled apiVersion.js)."""
        text = (self.stripe_package / "cjs" / "apiVersion.js").read_text()
        marker = "ApiVersion = '"
        start = text.index(marker) + len(marker)
        return text[start : text.index("'", start)]

    @contextmanager
    def workdir(self) -> Iterator[Path]:
        """A fresh directory beside node_modules (so `import 'stripe'` resolves), removed afterwards."""
        path = self.root / "runs" / uuid.uuid4().hex
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def published_statuses(self, ts_type: str) -> set[str]:
        """The values a published type's `status` can take: its `Status` union, or, where the
        types say only `string`, the values its documentation lists (`pending`, `failed`, ...)."""
        *namespaces, name = ts_type.removeprefix("Stripe.").split(".")
        declarations = self.stripe_package / "cjs" / "resources" / Path(*namespaces, f"{name}s.d.ts")
        text = declarations.read_text()
        interface = re.search(rf"^export interface {name} {{\n(.*?)^}}", text, re.DOTALL | re.MULTILINE)
        member = interface and re.search(r"/\*\*((?:(?!\*/).)*)\*/\n    status: ([^;]+);", interface[1], re.DOTALL)
        if member is None:
            raise AssertionError(f"{ts_type} has no `status` in {declarations}")
        if f"{name}.Status" in member[2]:
            namespace = re.search(rf"^export declare namespace {name} {{\n(.*?)^}}", text, re.DOTALL | re.MULTILINE)
            union = namespace and re.search(r"^    type Status = (.*);$", namespace[1], re.MULTILINE)
            if union is None:
                raise AssertionError(f"{ts_type}.Status is not declared in {declarations}")
            return {v.strip().strip("'") for v in union[1].split("|")} - {"OtherString"}
        documented = set(re.findall(r"`([a-z_]+)`", member[1]))
        if not documented:
            raise AssertionError(f"{ts_type}.status is neither a union nor documented with its values")
        return documented

    def tsc(self, project: Path, timeout: float = 240) -> str:
        """Runs the compiler on a project directory (its tsconfig.json); returns the diagnostics."""
        tsc = self.root / "node_modules" / "typescript" / "bin" / "tsc"
        result = subprocess.run(
            ["node", str(tsc), "-p", str(project), "--pretty", "false"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0 and "error TS" not in result.stdout:
            raise RuntimeError(f"tsc failed without diagnostics:\n{result.stdout}\n{result.stderr}")
        return result.stdout


def _installed(root: Path) -> bool:
    for name, version in PACKAGES.items():
        manifest = root / "node_modules" / name / "package.json"
        try:
            if json.loads(manifest.read_text()).get("version") != version:
                return False
        except (OSError, ValueError):
            return False
    return True


def ensure(root: Path | None = None) -> Toolchain:
    """The cached toolchain, installing it with npm first if needed (raises Unavailable)."""
    root = root or cache_dir()
    if _installed(root):
        return Toolchain(root)
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise Unavailable(f"`{tool}` is not installed")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(root):
            (root / "package.json").write_text(json.dumps({"private": True, "dependencies": PACKAGES}, indent=2))
            try:
                result = subprocess.run(
                    ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"],
                    cwd=root,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            except subprocess.TimeoutExpired as exc:
                raise Unavailable("npm install did not finish within 300 s") from exc
            if result.returncode != 0 or not _installed(root):
                raise Unavailable(f"npm install failed:\n{result.stderr[-2000:]}")
    return Toolchain(root)
