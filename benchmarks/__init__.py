"""Benchmarks of taskq side by side with Celery, RQ, Dramatiq, Huey, arq, SAQ and taskiq.

Run ``python benchmarks/run.py`` (``--quick`` for a smoke run); see docs/benchmarks.md.
Nothing here is imported by taskq itself.
"""
