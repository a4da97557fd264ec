"""Shipped training recipes (YAML)."""
