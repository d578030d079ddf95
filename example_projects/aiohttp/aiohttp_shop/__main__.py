"""``python -m aiohttp_shop [--host H] [--port P]``: serve the shop with aiohttp's runner."""

from __future__ import annotations

import argparse

from aiohttp import web

from .app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="aiohttp_shop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
