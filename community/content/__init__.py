"""What lives inside a hub group: posts."""
