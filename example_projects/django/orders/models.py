from __future__ import annotations

from django.db import models


class Order(models.Model):
    """An order: written by the view, paid by the ``charge_order`` task."""

    email = models.EmailField()
    items = models.JSONField()
    total_cents = models.PositiveIntegerField(default=0)
    paid = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
