"""What the Django tests store: orders, written in a transaction with the task that follows."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    email = models.CharField(max_length=200)
    paid = models.BooleanField(default=False)

    class Meta:
        app_label = "testapp"
