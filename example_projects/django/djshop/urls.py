from __future__ import annotations

from django.urls import include, path
from orders import views

urlpatterns = [
    path("orders", views.place_order),
    path("orders/<str:task_id>", views.order_status),
    path("tasks/", include("taskq_django.urls")),
]
