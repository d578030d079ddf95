"""A small shop on aiohttp: orders are paid and confirmed by taskq tasks."""
