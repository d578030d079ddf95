"""A small shop on Litestar: orders are paid and confirmed by taskq tasks."""
