from __future__ import annotations

from django.apps import AppConfig


class ContainerManagerConfig(AppConfig):
    name = "container_manager"
    verbose_name = "Container manager"
    default_auto_field = "django.db.models.BigAutoField"
