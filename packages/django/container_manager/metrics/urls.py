"""Include these in your URLconf to serve the metrics: ``path("metrics/", include("container_manager.metrics.urls"))``."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.urls import path

try:
    import prometheus_client  # noqa: F401
except ImportError as exc:
    raise ImproperlyConfigured(
        "container_manager.metrics.urls needs prometheus_client: "
        'pip install "container-manager-django[metrics]".'
    ) from exc

from container_manager.metrics import views

app_name = "container_manager_metrics"
urlpatterns = [path("", views.metrics, name="metrics")]
