"""A small shop on FastAPI: orders are paid and confirmed by taskq tasks."""
