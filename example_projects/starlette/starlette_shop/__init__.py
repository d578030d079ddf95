"""A small shop on Starlette: orders are paid and confirmed by taskq tasks."""
