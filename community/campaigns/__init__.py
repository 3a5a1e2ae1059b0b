"""Email campaigns: one message from an owner to a segment of the members (the top floor)."""
