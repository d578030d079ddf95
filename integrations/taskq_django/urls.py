"""``path("tasks/", include("taskq_django.urls"))``: one view for every path under it.

``path("tasks", include(...))`` (no trailing slash) works too, and then the bare ``/tasks``
is served as well, as in the other frameworks.
"""

from __future__ import annotations

from django.urls import path, re_path

from taskq_core.http.routes import ANY_PATH

from .views import dispatch

app_name = "taskq"

urlpatterns = [
    path("", dispatch, name="root"),
    # mounted at "tasks/": the rest of the path; mounted at "tasks": a slash, then the rest
    # (written [/] so that Django's check for patterns starting with a slash stays quiet:
    # here the slash is the point)
    # (newlines included: routes.ANY_PATH)
    re_path(rf"^(?P<path>[^/]{ANY_PATH})$", dispatch, name="path"),
    re_path(rf"^[/](?P<path>{ANY_PATH})$", dispatch, name="path_after_slash"),
]
