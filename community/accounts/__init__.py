"""Users, passwords, login links, API tokens and web sessions, community roles and guards."""
