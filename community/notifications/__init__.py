"""Notifications: the catalogue of messages, who is told what (community settings, per-offer
overrides, per-staff choices, owners' templates), and the delivery log. The top floor: it reads
accounts, offers and billing to find recipients; the domains only announce (mail/announce.py)."""
