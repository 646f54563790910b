"""Errors raised by the Django app. Executor errors come from container_manager_core.errors."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError

from container_manager_core.errors import ContainerManagerError


class InvalidExecutor(ImproperlyConfigured):
    """No installed plugin provides the configured executor type, or a host does not match it."""


class InvalidStateTransition(ContainerManagerError):
    """A job cannot move to the requested status from the status it is in now."""

    def __init__(self, job_id: Any, current: str | None, target: str) -> None:
        self.job_id = job_id
        # Plain strings, so the message reads 'running' rather than JobStatus.RUNNING.
        self.current = None if current is None else str(current)
        self.target = str(target)
        super().__init__(f"Job {str(job_id)!r} cannot move from {self.current!r} to {self.target!r}.")


class HostUnavailable(ValidationError):
    """A job was aimed at an inactive or unhealthy host; a ValidationError, so forms show it."""

    def __init__(self, message: str, code: str = "host_unavailable", params: Any = None) -> None:
        super().__init__(message, code=code, params=params)
