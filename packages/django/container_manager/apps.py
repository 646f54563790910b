"""The app config: registers the system checks and the settings-reset receiver."""

from __future__ import annotations

import importlib.util

from django.apps import AppConfig
from django.core import checks


class ContainerManagerConfig(AppConfig):
    name = "container_manager"
    verbose_name = "Container manager"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from container_manager import checks as app_checks
        from container_manager import conf, signals  # noqa: F401 - connect their receivers

        checks.register(app_checks.check_settings, "container_manager")
        checks.register(app_checks.check_executor_plugins, "container_manager")
        checks.register(app_checks.check_user_namespaces, "container_manager")
        # Reads the host table, yet untagged: plain `manage.py check` must report such hosts.
        checks.register(app_checks.check_host_plugins, "container_manager")
        # Django's task signals for task jobs, where Django has a task API (6.0 and later).
        if importlib.util.find_spec("django.tasks") is not None:
            from container_manager.tasks import bridge  # noqa: F401
