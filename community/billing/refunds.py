"""Refunds (ours and the Stripe dashboard's) and disputes."""

from __future__ import annotations

from typing import Any

EVENT_HANDLERS: dict[str, Any] = {}
