from __future__ import annotations

from django.apps import AppConfig


class TestappConfig(AppConfig):
    name = "tests.integrations.django.testapp"
    label = "testapp"
