"""System checks: valid CONTAINER_MANAGER settings and an installed plugin for every executor type in use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from container_manager_core.errors import ContainerManagerError, NoExecutorPlugin


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an invalid ``CONTAINER_MANAGER`` setting."""
    from container_manager.conf import app_settings

    try:
        app_settings().policy_limits()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="container_manager.E001")]
    return []


def check_executor_plugins(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn about executor types (the default, and every host's) that no installed plugin provides."""
    from container_manager.conf import app_settings
    from container_manager.executors.registry import get_plugin_manager

    try:
        installed = get_plugin_manager().executor_types()
    except ContainerManagerError as exc:
        return [Error(f"Executor plugins could not be loaded: {exc}", id="container_manager.E002")]
    try:
        wanted: dict[str, str] = {
            app_settings().DEFAULT_EXECUTOR_TYPE: "CONTAINER_MANAGER['DEFAULT_EXECUTOR_TYPE']"
        }
    except ImproperlyConfigured:
        wanted = {}  # check_settings reports it
    # Django passes ``databases`` only when checks may query (migrate, check --database).
    for alias in databases or ():
        wanted.update({t: f"executor hosts ({alias})" for t in _host_types(alias) if t not in wanted})
    return [
        Warning(
            str(NoExecutorPlugin(executor_type, sorted(installed))),
            hint=f"Used by {where}.",
            id="container_manager.W001",
        )
        for executor_type, where in sorted(wanted.items())
        if executor_type not in installed
    ]


def _host_types(alias: str) -> set[str]:
    from container_manager.models import ExecutorHost

    try:
        return set(ExecutorHost.objects.using(alias).values_list("executor_type", flat=True).distinct())
    except DatabaseError:
        # Before the first migrate the table does not exist yet; nothing uses any type then.
        return set()
