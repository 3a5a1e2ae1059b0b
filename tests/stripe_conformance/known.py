"""Mismatches with Stripe's published types that the sandbox keeps on purpose, each because
Stripe's documented behaviour and its published types disagree, with the reason. The
conformance test fails on any other mismatch, and on one listed here that no longer occurs.

Each key is a Finding.key: "<object>.<field path>: <what is wrong>".
"""

from __future__ import annotations

DISAGREEMENTS: dict[str, str] = {}
