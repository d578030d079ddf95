"""A small shop on Quart: orders are paid and confirmed by taskq tasks."""
