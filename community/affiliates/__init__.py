"""Resell rights: enrolments, links, clicks, commissions, payouts (issue 6)."""
