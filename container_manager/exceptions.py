"""Errors raised by the Django app. Executor errors come from container_manager_core.errors."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class InvalidExecutor(ImproperlyConfigured):
    """No installed plugin provides the configured executor type."""


class InvalidStateTransition(Exception):  # noqa: N818 - the name says what happened
    """A job cannot move to the requested status from the status it is in now."""

    def __init__(self, job_id: Any, current: str | None, target: str) -> None:
        self.job_id = job_id
        self.current = current
        self.target = target
        super().__init__(f"Job {str(job_id)!r} cannot move from {current!r} to {target!r}.")


class HostUnavailable(Exception):  # noqa: N818
    """A job was aimed at an inactive or unhealthy host."""
