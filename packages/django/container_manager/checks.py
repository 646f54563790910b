"""System checks: valid CONTAINER_MANAGER settings, and an installed plugin for every executor type in use."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
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
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when no installed plugin provides the default executor type."""
    from container_manager.conf import app_settings
    from container_manager.executors.registry import get_plugin_manager

    try:
        installed = get_plugin_manager().executor_types()
    except ContainerManagerError as exc:
        return [Error(f"Executor plugins could not be loaded: {exc}", id="container_manager.E002")]
    try:
        default = app_settings().DEFAULT_EXECUTOR_TYPE
    except ImproperlyConfigured:
        return []  # check_settings reports it
    if default in installed:
        return []
    return [
        Warning(
            str(NoExecutorPlugin(default, sorted(installed))),
            hint="Used by CONTAINER_MANAGER['DEFAULT_EXECUTOR_TYPE'].",
            id="container_manager.W001",
        )
    ]


def check_user_namespaces(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when jobs may run without user namespaces in a deployment that is not in DEBUG.

    With REQUIRE_USER_NAMESPACES off, a Docker engine that neither remaps users nor runs rootless
    runs jobs whose root is root on the machine. Under DEBUG (a laptop, whose engine rarely remaps)
    the warning would only be noise.
    """
    from django.conf import settings

    from container_manager.conf import app_settings

    try:
        required = app_settings().REQUIRE_USER_NAMESPACES
    except ImproperlyConfigured:
        return []  # check_settings reports it
    if required or settings.DEBUG:
        return []
    return [
        Warning(
            "CONTAINER_MANAGER['REQUIRE_USER_NAMESPACES'] is off while DEBUG is off: jobs may run on "
            "Docker engines without user namespaces, where root in a container is root on the machine.",
            hint=(
                'Start every engine with "userns-remap": "default" in daemon.json (or rootless), then '
                "remove REQUIRE_USER_NAMESPACES from CONTAINER_MANAGER (it is on by default): "
                "`manage.py check_hosts` names any engine that still runs jobs without them."
            ),
            id="container_manager.W003",
        )
    ]


# Host names a W002 warning lists before it says "and N more".
HOSTS_NAMED = 10


def check_host_plugins(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn about active hosts whose executor type no installed plugin provides.

    Not tagged ``database``, so a plain ``manage.py check`` (and ``runserver``, ``migrate``) runs it:
    such a host is marked unhealthy by every worker and runs none of its jobs. Before the first
    migrate, or with the database unreachable, there is nothing to read and it says nothing.
    """
    from container_manager.executors.registry import get_plugin_manager

    try:
        installed = get_plugin_manager().executor_types()
    except ContainerManagerError:
        return []  # check_executor_plugins reports it (E002)
    hosts = _active_hosts()
    missing: dict[str, list[str]] = {}
    for name, executor_type in hosts:
        if executor_type not in installed:
            missing.setdefault(executor_type, []).append(name)
    warnings: list[CheckMessage] = []
    for executor_type, names in sorted(missing.items()):
        shown = ", ".join(sorted(names)[:HOSTS_NAMED])
        more = f" and {len(names) - HOSTS_NAMED} more" if len(names) > HOSTS_NAMED else ""
        warnings.append(
            Warning(
                str(NoExecutorPlugin(executor_type, sorted(installed))),
                hint=(
                    f"Used by the active executor {'host' if len(names) == 1 else 'hosts'} {shown}{more}: "
                    "workers mark them unhealthy and run none of their jobs until the plugin is "
                    "installed or the hosts are deactivated."
                ),
                id="container_manager.W002",
            )
        )
    return warnings


def _active_hosts() -> list[tuple[str, str]]:
    """Return (name, executor_type) of every active host; nothing before migrate or without a database."""
    from django.db import connections, router

    from container_manager.models import ExecutorHost

    alias = router.db_for_read(ExecutorHost)
    connection = connections[alias]
    name = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor == "sqlite" and name and "memory" not in name and not Path(name).exists():
        return []  # No database file yet: connecting would create an empty one.
    try:
        if ExecutorHost._meta.db_table not in connection.introspection.table_names():
            return []  # Before the first migrate.
        return list(
            ExecutorHost.objects.using(alias).filter(is_active=True).values_list("name", "executor_type")
        )
    except DatabaseError:
        return []  # Unreachable: the check cannot tell, and must not fail the command for it.
