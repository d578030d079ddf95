"""A small shop on Flask: orders are paid and confirmed by taskq tasks."""
