"""Communities (the tenant), hubs and hub groups."""
