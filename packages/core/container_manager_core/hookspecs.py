"""The hook specifications: only where many plugins answer.

``register_executors`` is called once per plugin when the manager loads it: the plugin adds its
executors (:class:`~container_manager_core.executor.ExecutorPlugin` does it for its own type), and
from then on the manager calls a host's executor directly. Policy hooks are collected from every
plugin: each returns the violations it finds, and all are reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

from container_manager_core.types import HostSpec, JobSpec, PolicyLimits, Violation

if TYPE_CHECKING:
    from container_manager_core.executor import ExecutorRegistry

PROJECT_NAME = "container_manager"
ENTRY_POINT_GROUP = "container_manager"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RegistrationSpec:
    """How a plugin makes its executors known, once."""

    @hookspec
    def register_executors(self, registry: ExecutorRegistry) -> None:
        """Call ``registry.add(executor)`` for each executor this plugin provides."""
        raise NotImplementedError  # pragma: no cover - a spec has no body


class PolicySpec:
    """Policy validators; every plugin may contribute, and all violations are collected."""

    @hookspec
    def validate_job(self, host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterable[Violation]:
        """Return every rule ``job`` breaks (an empty iterable when it breaks none).

        ``host`` is None when the job is not yet bound to a host.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec
    def validate_host(self, host: HostSpec) -> Iterable[Violation]:
        """Return every rule the host configuration breaks."""
        raise NotImplementedError  # pragma: no cover
