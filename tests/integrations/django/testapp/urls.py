from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("enqueue", views.enqueue),
    path("boom", views.boom),
    path("orders", views.place_order),
    path("tasks/", include("taskq_django.urls")),
]
