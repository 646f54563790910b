"""The job queryset verbs and ``ContainerJob.objects.create_job()``, the one documented way to queue a job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils import timezone

from container_manager import validation
from container_manager.due import claimable_q
from container_manager.states import ACTIVE_STATUSES, FINISHED_STATUSES, JobStatus
from container_manager.validation import encode_command

if TYPE_CHECKING:
    from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost

# Fields create_job must not take from **other: the state machine and the worker own them.
_LIFECYCLE_FIELDS = frozenset(
    {
        "id",
        "status",
        "execution_id",
        "exit_code",
        "termination_reason",
        "stdout_log",
        "stderr_log",
        "docker_log",
        "clean_output",
        "parsed_output",
        "stdout_dropped_bytes",
        "stderr_dropped_bytes",
        "stdout_replaced_bytes",
        "stderr_replaced_bytes",
        "max_memory_usage",
        "cpu_usage_percent",
        "created_at",
        "launched_at",
        "started_at",
        "completed_at",
        "last_error",
        "worker_id",
        "attempt",
        "lease_expires_at",
        "cancel_requested_at",
        "stop_reason",
        "interruption_count",
        "retry_count",
        "next_attempt_at",
        "command_form",
    }
)


class ContainerJobQuerySet(models.QuerySet["ContainerJob"]):
    """Queue-shaped filters over jobs."""

    def pending(self) -> ContainerJobQuerySet:
        return self.filter(status=JobStatus.PENDING)

    def running(self) -> ContainerJobQuerySet:
        return self.filter(status=JobStatus.RUNNING)

    def active(self) -> ContainerJobQuerySet:
        """Return jobs a worker holds: launching or running."""
        return self.filter(status__in=ACTIVE_STATUSES)

    def finished(self) -> ContainerJobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def claimable(self, now: datetime | None = None) -> ContainerJobQuerySet:
        """Return jobs a worker may claim now (the claim's own rule), highest priority and oldest first."""
        return self.filter(claimable_q(now or timezone.now())).order_by("-priority", "created_at")

    def on_host(self, host: ExecutorHost) -> ContainerJobQuerySet:
        return self.filter(docker_host=host)


class ContainerJobManager(models.Manager["ContainerJob"]):
    """``ContainerJob.objects``: the queryset verbs plus ``create_job``."""

    def get_queryset(self) -> ContainerJobQuerySet:
        return ContainerJobQuerySet(self.model, using=self._db)

    def pending(self) -> ContainerJobQuerySet:
        return self.get_queryset().pending()

    def running(self) -> ContainerJobQuerySet:
        return self.get_queryset().running()

    def active(self) -> ContainerJobQuerySet:
        return self.get_queryset().active()

    def finished(self) -> ContainerJobQuerySet:
        return self.get_queryset().finished()

    def claimable(self, now: datetime | None = None) -> ContainerJobQuerySet:
        return self.get_queryset().claimable(now)

    def on_host(self, host: ExecutorHost) -> ContainerJobQuerySet:
        return self.get_queryset().on_host(host)

    def create_job(
        self,
        image: str,
        command: str | Sequence[str] | None,
        name: str = "",
        *,
        environment_template: str | EnvironmentVariableTemplate | None = None,
        environment_vars: Mapping[str, str] | None = None,
        memory_limit: int | None = None,
        cpu_limit: float | None = None,
        timeout_seconds: int | None = None,
        pids_limit: int | None = None,
        working_directory: str = "",
        network_configuration: Sequence[Mapping[str, Any]] | None = None,
        docker_host: str | ExecutorHost | None = None,
        executor_type: str | None = None,
        priority: int = 0,
        scheduled_for: datetime | None = None,
        max_retries: int = 0,
        user: str | None = None,
        commit: bool = True,
        **other: Any,
    ) -> ContainerJob:
        """Validate and queue a job; nothing is saved unless every check passes.

        ``command`` is a shell string, or a list of strings for exec form; None runs the image's
        default command. Limits left out come from the ``CONTAINER_MANAGER`` defaults.
        ``commit=False`` validates and returns the job unsaved (its id already chosen), for a
        caller that checks a job it may queue later, or saves it itself.

        Raises:
            ValidationError: a field is malformed, the template or host is unknown, the host is
                unavailable, or the job breaks policy rules (each violation listed with its code;
                the rejection is also logged on the ``container_manager.security`` logger).
        """
        from container_manager.conf import app_settings

        if forbidden := sorted(set(other) & _LIFECYCLE_FIELDS):
            raise TypeError(
                f"create_job() cannot set {forbidden!r}: the worker and the state machine own them."
            )
        settings = app_settings()
        template = _resolve_template(environment_template)
        host = _resolve_host(docker_host)
        command_text, command_form = encode_command(command)
        job = self.model(
            docker_image=image,
            command=command_text,
            command_form=command_form,
            name=name,
            environment_template=template,
            environment_overrides=_copy(environment_vars, {}),
            memory_limit=settings.DEFAULT_MEMORY_LIMIT_MB if memory_limit is None else memory_limit,
            cpu_limit=settings.DEFAULT_CPU_LIMIT if cpu_limit is None else cpu_limit,
            timeout_seconds=settings.DEFAULT_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds,
            pids_limit=settings.DEFAULT_PIDS_LIMIT if pids_limit is None else pids_limit,
            working_directory=working_directory,
            network_configuration=_copy(network_configuration, []),
            docker_host=host,
            executor_type=executor_type
            or (host.executor_type if host is not None else settings.DEFAULT_EXECUTOR_TYPE),
            priority=priority,
            scheduled_for=scheduled_for,
            max_retries=max_retries,
            user=user or settings.DEFAULT_USER,
            **other,
        )
        # The id is a fresh UUID, so the uniqueness query would only cost a round trip.
        job.full_clean(validate_unique=False)
        if commit:
            job.save(force_insert=True)
        return job


def _copy(value: Any, empty: Any) -> Any:
    """Return a JSON-ready copy of a mapping or list, leaving anything else for validation to name."""
    if value is None:
        return empty
    if isinstance(value, Mapping):
        return {key: _copy(item, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item, item) for item in value]
    return value


def _resolve_template(value: str | EnvironmentVariableTemplate | None) -> EnvironmentVariableTemplate | None:
    from container_manager.models import EnvironmentVariableTemplate

    if value is None or isinstance(value, EnvironmentVariableTemplate):
        return value
    try:
        return EnvironmentVariableTemplate.objects.get(name=value)
    except EnvironmentVariableTemplate.DoesNotExist:
        raise validation.field_error(
            "environment_template",
            f"No environment template named {value!r}; create it first.",
            "unknown_template",
        ) from None


def _resolve_host(value: str | ExecutorHost | None) -> ExecutorHost | None:
    from container_manager.models import ExecutorHost

    if value is None or isinstance(value, ExecutorHost):
        return value
    try:
        return ExecutorHost.objects.get(name=value)
    except ExecutorHost.DoesNotExist:
        raise validation.field_error(
            "docker_host", f"No executor host named {value!r}.", "unknown_host"
        ) from None
