"""Django-free core of container-manager: value types, hook specs, plugin manager, policy."""

from __future__ import annotations

from container_manager_core.capabilities import Capabilities
from container_manager_core.errors import (
    ContainerManagerError,
    ExecutionNotFound,
    ExecutorError,
    ExecutorUnavailable,
    HostMisconfigured,
    ImagePullFailed,
    LaunchFailed,
    NoExecutorPlugin,
    PluginLoadError,
    PolicyViolationError,
)
from container_manager_core.hookspecs import hookimpl, hookspec
from container_manager_core.plugins import ExecutorPlugin, PluginManager
from container_manager_core.types import (
    Command,
    CommandForm,
    Execution,
    ExecutionLogs,
    ExecutionState,
    ExecutionStatus,
    HealthStatus,
    HostSpec,
    JobSpec,
    NetworkAttachment,
    PolicyLimits,
    ResourceUsage,
    TlsSettings,
    TmpfsMount,
    Violation,
)

__all__ = [
    "Capabilities",
    "Command",
    "CommandForm",
    "ContainerManagerError",
    "Execution",
    "ExecutionLogs",
    "ExecutionNotFound",
    "ExecutionState",
    "ExecutionStatus",
    "ExecutorError",
    "ExecutorPlugin",
    "ExecutorUnavailable",
    "HealthStatus",
    "HostMisconfigured",
    "HostSpec",
    "ImagePullFailed",
    "JobSpec",
    "LaunchFailed",
    "NetworkAttachment",
    "NoExecutorPlugin",
    "PluginLoadError",
    "PluginManager",
    "PolicyLimits",
    "PolicyViolationError",
    "ResourceUsage",
    "TlsSettings",
    "TmpfsMount",
    "Violation",
    "hookimpl",
    "hookspec",
]
