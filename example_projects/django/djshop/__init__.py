"""A small shop on Django: orders are stored, then paid and confirmed by taskq tasks."""
