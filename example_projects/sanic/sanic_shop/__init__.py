"""A small shop on Sanic: orders are paid and confirmed by taskq tasks."""
