"""A project URLconf that opts in to the metrics endpoint, as DOCKER.md shows (tests.urls does not)."""

from __future__ import annotations

from django.urls import include, path

from tests.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("metrics/", include("container_manager.metrics.urls"))]
