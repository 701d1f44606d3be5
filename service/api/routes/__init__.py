"""Routers, one per resource. Each route parses, calls one use case, renders the answer."""
