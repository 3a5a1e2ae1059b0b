"""Subscriptions, renewals, refunds, discount codes, payments ledger (issues 4 and 5)."""
