"""A small shop on Falcon (WSGI and ASGI): orders are paid and confirmed by taskq tasks."""
