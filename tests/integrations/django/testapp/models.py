"""What the Django tests store: orders, written in a transaction with the task that follows."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    # typed by hand: mypy runs without the django-stubs plugin (it would need Django set up)
    id: int  # the AutoField Django adds
    email: models.CharField[str, str] = models.CharField(max_length=200)
    paid: models.BooleanField[bool, bool] = models.BooleanField(default=False)

    class Meta:
        app_label = "testapp"
