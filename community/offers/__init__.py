"""Offers, offer<->group links, entitlements and the access query (issue 3)."""
