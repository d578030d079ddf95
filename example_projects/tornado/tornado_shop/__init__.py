"""A small shop on Tornado: orders are paid and confirmed by taskq tasks."""
