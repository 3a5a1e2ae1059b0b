"""Memberships over time: renewals, failed payments and grace, cancellations, trials."""

from __future__ import annotations

from typing import Any

EVENT_HANDLERS: dict[str, Any] = {}
