"""Hosts, environment templates and jobs; a job's status changes only through its event methods."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MinValueValidator
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, connection, models, router, transaction
from django.db.models.expressions import Combinable
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from container_manager import due, placement, signals, sqltext, validation
from container_manager.conf import app_settings
from container_manager.exceptions import InvalidStateTransition
from container_manager.executors.registry import get_plugin_manager
from container_manager.fields import StorableTextField
from container_manager.managers import ContainerJobManager
from container_manager.security import log_host_rejection, log_policy_rejection
from container_manager.states import (
    ACTIVE_STATUSES,
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    CancelOutcome,
    JobStatus,
    TerminationReason,
    settle,
    sources_of,
)
from container_manager.tasks import channel as task_channel

# Defined in its own module, imported here so that Django finds it among the app's models.
from container_manager.workers import WorkerProcess  # noqa: F401
from container_manager_core.envfile import EnvSyntaxError, parse_env_text
from container_manager_core.errors import NoExecutorPlugin
from container_manager_core.labels import ATTEMPT_LABEL, JOB_ID_LABEL, MANAGED_LABEL
from container_manager_core.logtext import storable_text
from container_manager_core.secrets import redact, scrub
from container_manager_core.types import (
    Command,
    CommandForm,
    HostSpec,
    JobSpec,
    NetworkAttachment,
    TlsSettings,
    Violation,
)

if TYPE_CHECKING:
    from container_manager.conf import AppSettings
    from container_manager_core.plugins import PluginManager

logger = logging.getLogger("container_manager.models")

# The core policy names JobSpec fields; these are the model fields a person edits to fix them.
# Violations on other spec fields (set by the app, not the user) are reported as non-field errors.
_SPEC_TO_MODEL_FIELD = {
    "memory_limit_mb": "memory_limit",
    "cpu_limit": "cpu_limit",
    "pids_limit": "pids_limit",
    "timeout_seconds": "timeout_seconds",
    "user": "user",
    "image": "docker_image",
    "working_dir": "working_directory",
    "networks": "network_configuration",
    "env": "environment_overrides",
    "command": "command",
    "max_retries": "max_retries",
    # The job's host has unsafe defaults (a Docker host's default_network, logs, init).
    "executor_config": "docker_host",
}


def _installed_type_error(executor_type: str) -> str | None:
    """Return the core's install hint if no plugin provides ``executor_type``."""
    try:
        get_plugin_manager().require(executor_type)
    except NoExecutorPlugin as exc:
        return str(exc)
    return None


class ExecutorHost(models.Model):
    """A place jobs run: a Docker daemon, a Cloud Run project/region, or any plugin's host."""

    class HostType(models.TextChoices):
        UNIX = "unix", _("Unix socket")
        TCP = "tcp", _("TCP")
        API = "api", _("Cloud API")

    name = models.CharField(max_length=100, unique=True)
    executor_type = models.CharField(
        max_length=50, default="docker", help_text=_("An installed executor plugin's type.")
    )
    host_type = models.CharField(max_length=10, choices=HostType.choices, default=HostType.UNIX)
    connection_string = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("unix:///path/to/socket, tcp://host:port, or empty for cloud APIs."),
    )
    tls_enabled = models.BooleanField(default=False)
    tls_verify = models.BooleanField(default=True)
    tls_ca_cert = models.CharField(max_length=500, blank=True, help_text=_("Path to the CA certificate."))
    tls_client_cert = models.CharField(
        max_length=500, blank=True, help_text=_("Path to the client certificate.")
    )
    tls_client_key = models.CharField(max_length=500, blank=True, help_text=_("Path to the client key."))
    is_active = models.BooleanField(default=True)
    weight = models.PositiveIntegerField(default=100, help_text=_("Higher weight receives more jobs."))
    max_concurrent_jobs = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)])
    # What the host can hold (container_manager/placement.py): the operator's override wins over
    # the engine's size, read by the health check. Neither set: that resource is unbounded.
    memory_capacity_mb = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("MB. Overrides the engine's memory; empty: what the engine reports."),
    )
    cpu_capacity = models.FloatField(
        null=True,
        blank=True,
        validators=[validation.positive_finite],
        help_text=_("CPUs. Overrides the engine's CPU count; empty: what the engine reports."),
    )
    engine_memory_mb = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text=_("MB, as the last health check read it.")
    )
    engine_cpus = models.FloatField(
        null=True, blank=True, editable=False, help_text=_("As the last health check read it.")
    )
    auto_pull_images = models.BooleanField(default=True)
    executor_config = models.JSONField(
        default=dict, blank=True, help_text=_("Plugin settings; secret values are masked when shown.")
    )

    healthy = models.BooleanField(default=True)
    last_health_check = models.DateTimeField(null=True, blank=True)
    last_health_error = models.TextField(blank=True)
    health_response_time = models.FloatField(null=True, blank=True, help_text=_("Seconds"))

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Never the config: it may hold registry passwords.
        return f"<ExecutorHost {self.name!r} {self.executor_type} {self.connection_string!r}>"

    @property
    def redacted_config(self) -> dict[str, Any]:
        """Return executor_config with secrets masked, for display and logs."""
        result: dict[str, Any] = redact(self.executor_config or {})
        return result

    @property
    def is_available(self) -> bool:
        return self.is_active and self.healthy

    def clean(self) -> None:
        errors = validation.as_field_errors(self._field_errors(), "invalid")
        for field, messages in self._type_and_config_errors().items():
            errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)
        if problems := self.unusable_errors(source="validation"):
            raise ValidationError(problems)

    def _field_errors(self) -> dict[str, list[str]]:
        # The address itself is the plugin's to judge (validate_host), here and in the worker alike.
        return validation.tls_errors(self)

    def _type_and_config_errors(self) -> dict[str, list[ValidationError]]:
        if message := _installed_type_error(self.executor_type):
            return {"executor_type": [ValidationError(message, code="invalid")]}
        if not isinstance(self.executor_config, dict):
            message = f"The executor config must be a JSON object, got {type(self.executor_config).__name__}."
            return {"executor_config": [ValidationError(message, code="invalid")]}
        return {}

    def unusable_errors(self, *, source: str) -> dict[str, list[ValidationError]]:
        """Return why this host cannot be used as it is, by field; empty when it can.

        The one rule for "can a worker use this host": ``clean()`` applies it when the host is saved,
        and workers when they load their hosts, so a row saved without ``full_clean()`` (or whose
        plugin was uninstalled since) is caught too. A host is unusable when no installed plugin
        provides its executor type, when its ``executor_config`` is not a JSON object, or when a
        plugin's ``validate_host`` hook refuses it. ``source`` names the caller in the security log.
        """
        if errors := self._type_and_config_errors():
            return errors
        spec = self.to_spec()
        violations = get_plugin_manager().validate_host(spec)
        if not violations:
            return {}
        log_host_rejection(spec, violations, source=source)
        return _violation_errors(
            violations, {"connection_string": "connection_string", "executor_config": "executor_config"}
        )

    def unusable_reason(self, *, source: str) -> str:
        """Return :meth:`unusable_errors` as one sentence for ``last_health_error``; empty when usable."""
        errors = self.unusable_errors(source=source)
        return " ".join(message for field in errors.values() for e in field for message in e.messages)

    def to_spec(self) -> HostSpec:
        """Return the plugin-facing view of this host."""
        settings = app_settings()
        tls = None
        if self.tls_enabled:
            tls = TlsSettings(
                ca_cert=self.tls_ca_cert or None,
                client_cert=self.tls_client_cert or None,
                client_key=self.tls_client_key or None,
                verify=self.tls_verify,
            )
        return HostSpec(
            name=self.name,
            executor_type=self.executor_type,
            connection_string=self.connection_string,
            tls=tls,
            # The deployment-wide log cap applies unless the host sets its own.
            config={"log_cap_bytes": settings.LOG_CAP_BYTES, **(self.executor_config or {})},
            auto_pull_images=self.auto_pull_images,
            owner=settings.manager_id(),
            require_user_namespaces=settings.REQUIRE_USER_NAMESPACES,
        )


class EnvironmentVariableTemplate(models.Model):
    """A named, reusable set of KEY=VALUE environment variables."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    environment_variables_text = models.TextField(
        blank=True, help_text=_("One KEY=VALUE per line; '#' starts a comment line.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            parse_env_text(self.environment_variables_text)
        except EnvSyntaxError as exc:
            raise validation.field_error("environment_variables_text", str(exc), "env_syntax") from exc

    def get_environment_variables(self) -> dict[str, str]:
        """Return the parsed variables."""
        return parse_env_text(self.environment_variables_text)


def _violation_errors(
    violations: Iterable[Violation], field_map: dict[str, str]
) -> dict[str, list[ValidationError]]:
    """Turn core violations into ValidationErrors keyed by model field, keeping each code."""
    errors: dict[str, list[ValidationError]] = {}
    for violation in violations:
        field = field_map.get(violation.field or "", NON_FIELD_ERRORS)
        errors.setdefault(field, []).append(ValidationError(scrub(violation.message), code=violation.code))
    return errors


class ContainerJob(models.Model):
    """One unit of work run in a container, tracked from creation to cleanup."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    executor_type = models.CharField(max_length=50, blank=True, help_text=_("Empty: the configured default."))
    # No index of its own: cm_job_host_status_idx starts with it.
    docker_host = models.ForeignKey(
        ExecutorHost, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs", db_index=False
    )
    docker_image = models.CharField(max_length=500)
    command = models.TextField(blank=True, help_text=_("Shell form text, or a JSON list for exec form."))
    command_form = models.CharField(
        max_length=10, choices=[(f.value, f.value) for f in CommandForm], default=CommandForm.SHELL.value
    )
    working_directory = models.CharField(max_length=500, blank=True)
    user = models.CharField(max_length=50, blank=True, help_text=_("UID or UID:GID; empty: the default."))
    environment_template = models.ForeignKey(
        EnvironmentVariableTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    environment_overrides = models.JSONField(default=dict, blank=True)
    network_configuration = models.JSONField(default=list, blank=True)

    memory_limit = models.PositiveIntegerField(null=True, blank=True, help_text=_("MB"))
    cpu_limit = models.FloatField(null=True, blank=True, help_text=_("Cores"))
    pids_limit = models.PositiveIntegerField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)

    priority = models.IntegerField(default=0, help_text=_("Higher runs first."))
    scheduled_for = models.DateTimeField(null=True, blank=True)
    max_retries = models.PositiveIntegerField(default=0)
    retry_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING)
    execution_id = models.CharField(max_length=200, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    termination_reason = models.CharField(max_length=30, choices=TerminationReason.choices, blank=True)

    # Output and texts that may quote it are made storable on every database (no NUL, valid UTF-8).
    stdout_log = StorableTextField(blank=True)
    stderr_log = StorableTextField(blank=True)
    docker_log = StorableTextField(blank=True, help_text=_("Executor and lifecycle events."))
    clean_output = StorableTextField(blank=True)
    parsed_output = models.JSONField(null=True, blank=True)
    stdout_dropped_bytes = models.BigIntegerField(default=0)
    stderr_dropped_bytes = models.BigIntegerField(default=0)
    stdout_replaced_bytes = models.BigIntegerField(
        default=0, help_text=_("NUL and invalid UTF-8 bytes of stdout replaced to store it as text.")
    )
    stderr_replaced_bytes = models.BigIntegerField(
        default=0, help_text=_("NUL and invalid UTF-8 bytes of stderr replaced to store it as text.")
    )
    run_seconds = models.FloatField(
        null=True, blank=True, help_text=_("The container's own run time, by the engine's clock.")
    )
    max_memory_usage = models.BigIntegerField(null=True, blank=True, help_text=_("Bytes"))
    cpu_usage_percent = models.FloatField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_error = StorableTextField(blank=True)

    # Claim bookkeeping: every worker write is conditioned on (worker_id, attempt), so a stale
    # worker cannot overwrite the result of a newer attempt or of a worker that took over.
    worker_id = models.CharField(max_length=100, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(
        max_length=20, blank=True, help_text=_("Why the worker stopped the container.")
    )
    interruption_count = models.PositiveIntegerField(default=0)
    # Set for a job enqueued through Django's task API (container_manager.tasks): the call's record.
    task = models.JSONField(
        null=True, blank=True, help_text=_("Django task: path, backend, queue, args and kwargs.")
    )

    objects = ContainerJobManager()

    class Meta:
        ordering = ["-created_at"]
        # Each index is here for a query the plans test (tests/unit/app/test_query_plans.py) checks on a
        # seeded table; a job's every status change writes to each full index, so none is spare.
        indexes = [
            # The claim and the idle "any due?" read: only rows in the claimable statuses (the rule's,
            # due.py), in claim order, so both walk it from the top and stop after LIMIT however
            # long the backlog.
            models.Index(
                fields=["-priority", "created_at"],
                name="cm_job_claim_idx",
                condition=models.Q(status__in=due.STATUSES),
            ),
            # Each host's active jobs (the claim's counts, the lease takeover), and the host's jobs.
            models.Index(fields=["docker_host", "status"], name="cm_job_host_status_idx"),
            # The admin's list, newest first, unfiltered and by status (``id`` breaks ties, as the
            # changelist orders).
            models.Index(fields=["-created_at", "-id"], name="cm_job_created_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="cm_job_status_created_idx"),
            # Retention: the oldest finished jobs first.
            models.Index(
                fields=["completed_at"],
                name="cm_job_finished_idx",
                condition=models.Q(status__in=sorted(FINISHED_STATUSES)),
            ),
        ]

    def __str__(self) -> str:
        return self.name or str(self.id)

    def __repr__(self) -> str:
        # Never the environment or the command: either may carry secrets.
        return f"<ContainerJob {str(self.id)!r} {self.name!r} {self.status}>"

    # Read helpers ----------------------------------------------------------------------------------

    @property
    def duration(self) -> timedelta | None:
        """Return the container's run time by the engine's clock, else (older rows) started to completed."""
        if self.run_seconds is not None:
            return timedelta(seconds=self.run_seconds)
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def get_execution_identifier(self) -> str:
        """Return the executor's id for this job's current execution ('' before launch)."""
        return self.execution_id

    def get_network_names(self) -> list[str]:
        """Return the names of the networks the job joins, in order."""
        return [str(entry["network_name"]) for entry in self.network_configuration or []]

    def get_all_environment_variables(self) -> dict[str, str]:
        """Return the template's variables merged with this job's overrides (overrides win)."""
        env: dict[str, str] = {}
        if self.environment_template is not None:
            env.update(self.environment_template.get_environment_variables())
        env.update({str(k): str(v) for k, v in (self.environment_overrides or {}).items()})
        return env

    def _container_environment(self) -> dict[str, str]:
        """The environment the container gets: the job's, and for a task the workers of its attempts."""
        env = self.get_all_environment_variables()
        if self.task is not None:
            env[task_channel.WORKERS_VARIABLE] = json.dumps(self._task_worker_ids())
        return env

    def _task_worker_ids(self) -> list[str]:
        """The workers of the earlier attempts and of this claim, oldest first (no query on a first run)."""
        earlier: list[str] = []
        if self.attempt > 1 and not self._state.adding:
            earlier = list(
                self.attempts.filter(claim__lt=self.attempt)
                .exclude(worker_id="")
                .order_by("number")
                .values_list("worker_id", flat=True)
            )
        return [*earlier, self.worker_id] if self.worker_id else earlier

    def get_command(self) -> Command | None:
        """Return the command to run, or None for the image's default."""
        if not self.command:
            return None
        if self.command_form == CommandForm.EXEC:
            return Command.exec(*validation.decode_command(self.command, self.command_form))
        return Command.shell(self.command)

    def to_spec(self, defaults: AppSettings | None = None) -> JobSpec:
        """Return the executor-facing spec; ``defaults`` supplies the configured user and network mode."""
        settings = defaults or app_settings()
        networks: tuple[NetworkAttachment, ...] = tuple(
            NetworkAttachment(str(n["network_name"]), tuple(n.get("aliases") or ()))
            for n in self.network_configuration or []
        )
        return JobSpec(
            job_id=str(self.id),
            name=self.name,
            image=self.docker_image,
            command=self.get_command(),
            env=self._container_environment(),
            working_dir=self.working_directory or None,
            user=self.user or settings.DEFAULT_USER,
            memory_limit_mb=self.memory_limit,
            cpu_limit=self.cpu_limit,
            pids_limit=self.pids_limit,
            timeout_seconds=self.timeout_seconds,
            stop_grace_seconds=settings.STOP_GRACE_SECONDS,
            # The attrs plugin types the core's ``converter=tuple`` as Iterable[_T_co], which nothing matches.
            networks=networks,
            network_mode=settings.DEFAULT_NETWORK_MODE if not self.network_configuration else None,
            labels={MANAGED_LABEL: "true", JOB_ID_LABEL: str(self.id), ATTEMPT_LABEL: str(self.attempt)},
        )

    # Validation ------------------------------------------------------------------------------------

    def clean(self) -> None:
        """Check the job's fields, its host, then every policy rule the installed plugins know."""
        errors: dict[str, list[str]] = {
            "command": validation.command_errors(self.command, self.command_form),
            "working_directory": validation.working_directory_errors(self.working_directory),
            "environment_overrides": validation.environment_errors(self.environment_overrides),
            "network_configuration": validation.network_errors(self.network_configuration),
        }
        host = self.docker_host
        if host is not None and self.executor_type and self.executor_type != host.executor_type:
            errors["executor_type"] = [
                f"The job's executor type {self.executor_type!r} does not match host {host.name!r}, "
                f"which is a {host.executor_type!r} host."
            ]
        elif message := _installed_type_error(self.resolved_executor_type()):
            errors["executor_type"] = [message]
        if self.environment_template is not None:
            try:
                self.environment_template.get_environment_variables()
            except EnvSyntaxError as exc:
                errors["environment_template"] = [
                    f"Environment template {self.environment_template.name!r} is invalid: {exc}"
                ]
        field_errors = validation.as_field_errors(errors, "invalid")
        # Only a job about to be queued needs a live host; editing history must stay possible.
        if host is not None and self._state.adding:
            try:
                validation.check_host_available(host)
            except ValidationError as exc:
                field_errors.setdefault("docker_host", []).append(exc)
        if field_errors:
            raise ValidationError(field_errors)
        self._check_policy(source="validation")
        # Only a queued job must fit a host; editing history must stay possible.
        if self.status in CLAIMABLE_STATUSES:
            self._check_placement()

    def resolved_executor_type(self) -> str:
        """Return the executor type this job runs on: its own, its host's, or the configured default."""
        if self.executor_type:
            return self.executor_type
        if self.docker_host is not None:
            return self.docker_host.executor_type
        return app_settings().DEFAULT_EXECUTOR_TYPE

    def _check_policy(self, *, source: str) -> None:
        """Raise a ValidationError listing every policy violation, and log them as a security event."""
        settings = app_settings()
        try:
            spec = self.to_spec(settings)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"The job cannot be expressed as a container spec: {exc}", code="invalid_spec"
            ) from exc
        host = self.docker_host.to_spec() if self.docker_host is not None else None
        violations = self.launch_violations(spec, host, settings)
        if violations:
            log_policy_rejection(spec, violations, host=host, source=source)
            raise ValidationError(_violation_errors(violations, _SPEC_TO_MODEL_FIELD))

    def _check_placement(self) -> None:
        """Raise a ValidationError (``no_host_fits``) if no host could hold the job even idle."""
        if violation := placement.refusal(self, app_settings()):
            raise ValidationError(_violation_errors([violation], _SPEC_TO_MODEL_FIELD))

    def launch_violations(
        self,
        spec: JobSpec,
        host: HostSpec | None,
        settings: AppSettings,
        manager: PluginManager | None = None,
    ) -> list[Violation]:
        """Return every rule the job breaks: the installed plugins' policy, and the app's own (retries).

        ``clean()`` and ``create_job`` call it, and the worker again before each launch, with the
        settings in force then, so a row changed behind ``create_job``'s back is refused too.
        """
        violations = (manager or get_plugin_manager()).validate_job(host, spec, settings.policy_limits())
        return [*violations, *validation.retry_violations(self.max_retries, settings.MAX_RETRIES)]

    # The state machine: one guarded write per event ------------------------------------------------
    #
    # Every status change is one of the event methods below. Each owns its guard (the sources the
    # TRANSITIONS table allows, narrowed to the event's own, and the worker's claim when a worker
    # writes) and its signal, and writes through _transition (or, for a claim, _claim_rows). No
    # other code assigns ``status``.

    def _transition(
        self,
        to: JobStatus,
        changes: Mapping[str, Any],
        *,
        owner: Owner | None = None,
        sources: Collection[JobStatus] | None = None,
    ) -> None:
        """Move this job to ``to`` with one conditional UPDATE; raise if another writer got there first.

        ``changes`` are the fields written with the status, and only that: what the row must still
        hold is given apart, as ``owner`` (the claim a worker's write needs) and ``sources``
        (narrowing the table's legal sources), so a written value can never become a condition.
        ``changes`` may hold expressions (``F("retry_count") + 1``); those fields are re-read.
        The signals are sent after commit.
        """
        to = JobStatus(to)
        if "status" in changes:
            raise ValueError("The status is the transition's target, not one of its changes.")
        # Compare and set: the row moves only from the status this instance holds, so the signals'
        # old_status is always the row's, and a stale view is refused rather than written over.
        old = self.status
        allowed = sources_of(to) & {JobStatus(old)}
        if sources is not None:
            allowed &= frozenset(JobStatus(s) for s in sources)
        if not allowed or not self._guarded_update(allowed, owner, {"status": to, **changes}):
            current = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            raise InvalidStateTransition(self.pk, current, to)
        self._landed(old, to, changes)

    def _landed(self, old: str, to: JobStatus, changes: Mapping[str, Any]) -> None:
        """Bring the instance up to the row just written, and send the signals once committed."""
        computed = [field for field, value in changes.items() if isinstance(value, Combinable)]
        for field, value in changes.items():
            if field not in computed:
                setattr(self, field, value)
        if computed:
            self.refresh_from_db(fields=computed)
        self.status = to
        transaction.on_commit(lambda: signals.send_transition(self, old, to))

    def _guarded_update(self, sources: Collection[str], owner: Owner | None, changes: dict[str, Any]) -> int:
        """UPDATE this row if its status is in ``sources`` (and ``owner`` still holds it); return the count."""
        model = type(self)
        known = sqltext.fields(model)
        plain = all(field in known and sqltext.is_plain(known[field], v) for field, v in changes.items())
        # sqltext speaks to the default database; a router that sends writes elsewhere gets the ORM.
        if not plain or router.db_for_write(model, instance=self) != DEFAULT_DB_ALIAS:
            query = model.objects.filter(pk=self.pk, status__in=sources)  # Expressions: the ORM.
            if owner is not None:
                query = query.filter(worker_id=owner.worker_id, attempt=owner.attempt)
            return query.update(**changes)
        # Plain values, the worker's path for every job: the same UPDATE, without compiling it.
        statuses = sorted(sources)
        pk = model._meta.pk.name
        where = (
            f"{sqltext.name(model, pk)} = %s"
            f" AND {sqltext.name(model, 'status')} IN ({sqltext.placeholders(statuses)})"
        )
        params: list[Any] = [sqltext.prepared(model, pk, self.pk), *statuses]
        if owner is not None:
            where += f" AND {sqltext.name(model, 'worker_id')} = %s AND {sqltext.name(model, 'attempt')} = %s"
            params += [owner.worker_id, owner.attempt]
        return sqltext.update(model, changes, where, params)

    def _owned_transition(
        self, to: JobStatus, changes: Mapping[str, Any], owner: Owner, sources: Collection[JobStatus]
    ) -> None:
        """A worker's transition; idempotent for the owner, whose earlier write may have landed unseen.

        A write can land although the database reported an error (a commit reply lost in a
        restart): tried again, the guarded UPDATE finds nothing to move, yet the row is the
        owner's and already where the write was taking it. That counts as done, and its signals,
        never sent, are sent now. Anything else raises InvalidStateTransition.
        """
        try:
            self._transition(to, changes, owner=owner, sources=sources)
        except InvalidStateTransition:
            saved = self._owned_status(owner)
            if saved != to:
                raise
            old = self.status
            if old == to:
                return
            self._landed(old, to, {k: v for k, v in changes.items() if not isinstance(v, Combinable)})

    def _owned_status(self, owner: Owner) -> str | None:
        """Return the row's status if ``owner`` still holds it, else None."""
        return (
            type(self)
            .objects.filter(pk=self.pk, worker_id=owner.worker_id, attempt=owner.attempt)
            .values_list("status", flat=True)
            .first()
        )

    def append_event(self, message: str) -> None:
        """Add a timestamped line to ``docker_log`` (lifecycle events) in the database and in memory."""
        # It may quote an engine, and the engine a credential.
        line = storable_text(f"{timezone.now().isoformat()} {scrub(message)}\n")[0]
        self.docker_log = (self.docker_log or "") + line
        type(self).objects.filter(pk=self.pk).update(
            docker_log=Concat(models.F("docker_log"), models.Value(line))
        )

    # Events a worker triggers ----------------------------------------------------------------------

    @classmethod
    def mark_launching(
        cls,
        jobs: Sequence[ContainerJob],
        *,
        host: ExecutorHost,
        worker_id: str,
        lease_expires_at: datetime,
        now: datetime,
    ) -> list[ContainerJob]:
        """Claim ``jobs`` for ``worker_id`` on ``host`` (queued -> LAUNCHING); return those won.

        One UPDATE for the whole batch, guarded by each row's status, so a job cancelled since it
        was read is not claimed. Each won job gets a new ``attempt``: every later write of this
        worker is guarded by the pair (``owner()``).
        """
        if not jobs:
            return []
        changes = {
            "worker_id": worker_id,
            "lease_expires_at": lease_expires_at,
            "launched_at": now,
            "stop_reason": "",
        }
        # As every transition, a claim moves a row only from the status it was read with: one
        # UPDATE per status read (almost always one, PENDING).
        won: list[ContainerJob] = []
        for status in _CLAIM_SOURCES:
            batch = [job for job in jobs if job.status == status]
            if batch:
                won += cls._claim_batch(batch, status, changes, host)
        return won

    @classmethod
    def _claim_batch(
        cls, jobs: list[ContainerJob], status: str, changes: dict[str, Any], host: ExecutorHost
    ) -> list[ContainerJob]:
        pks = [job.pk for job in jobs]
        if _claim_rows(pks, [status], changes=changes, host_pk=host.pk) != len(jobs):
            # The guard left a row out (a cancel between the read and the UPDATE): keep what was won.
            kept = set(
                cls.objects.filter(
                    pk__in=pks,
                    worker_id=changes["worker_id"],
                    status=JobStatus.LAUNCHING,
                    launched_at=changes["launched_at"],
                ).values_list("pk", flat=True)
            )
            jobs = [job for job in jobs if job.pk in kept]
        for job in jobs:
            old = job.status
            job.docker_host = host
            job.attempt += 1
            for field, value in changes.items():
                setattr(job, field, value)
            job.status = JobStatus.LAUNCHING
            transaction.on_commit(functools.partial(signals.send_transition, job, old, JobStatus.LAUNCHING))
        return jobs

    def owner(self) -> Owner:
        """Return the claim this instance holds: its worker and attempt."""
        return Owner(self.worker_id, self.attempt)

    def mark_running(self, owner: Owner, *, execution_id: str) -> None:
        """The owner's container was launched (or adopted): LAUNCHING -> RUNNING."""
        changes: dict[str, Any] = {"execution_id": execution_id}
        if self.started_at is None or self.status == JobStatus.LAUNCHING:
            changes["started_at"] = timezone.now()
        with _own_row_write(self):
            self._owned_transition(JobStatus.RUNNING, changes, owner, {JobStatus.LAUNCHING})

    def record_exit(
        self,
        owner: Owner,
        reason: TerminationReason,
        *,
        result: Mapping[str, Any] | None = None,
        error: str = "",
        interrupted: bool = False,
        settings: AppSettings | None = None,
        now: datetime | None = None,
    ) -> JobStatus:
        """Save how the owner's run ended and move the job where ``reason`` leads; return that status.

        ``result`` holds the harvested fields (exit code, logs, usage). The job is retried when
        the reason and its counters allow (``states.settle``), else it finishes. A result the
        database refuses for its own data (a value out of range, text it cannot hold) fails the
        job as ``result_unstorable``, saying what it could not store; an error of the database
        itself (a lost connection) is raised, for the worker to pause and try again.
        """
        now = now or timezone.now()
        status, reason, bookkeeping = settle(
            reason,
            interrupted=interrupted,
            retry_count=self.retry_count,
            max_retries=self.max_retries,
            interruption_count=self.interruption_count,
            settings=settings or app_settings(),
            now=now,
        )
        changes = {
            **(result or {}),
            **bookkeeping,
            "termination_reason": reason,
            "lease_expires_at": None,
            "last_error": scrub(error),
        }
        try:
            with _own_row_write(self):
                self._owned_transition(status, changes, owner, ACTIVE_STATUSES)
        except ROW_DATA_ERRORS as exc:
            summary = ", ".join(f"{k}={_short(v)}" for k, v in (result or {}).items() if k in _SUMMARY_FIELDS)
            self.fail(
                owner,
                TerminationReason.RESULT_UNSTORABLE,
                f"The job's result could not be stored ({summary or 'no result'}): {_describe(exc)}. "
                "Its output and usage were dropped.",
                now=now,
                extra={"stop_reason": (result or {}).get("stop_reason", "")},
            )
            return JobStatus.FAILED
        return status

    def fail_launch(self, owner: Owner, reason: TerminationReason, error: str) -> None:
        """The owner could not launch the job (refused, no image, invalid spec): LAUNCHING -> FAILED."""
        self.fail(owner, reason, error, sources={JobStatus.LAUNCHING})

    def fail(
        self,
        owner: Owner,
        reason: TerminationReason,
        error: str,
        *,
        sources: Collection[JobStatus] = ACTIVE_STATUSES,
        now: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """End the owner's job as FAILED for ``reason`` without a result; never retried."""
        changes = {
            **(extra or {}),
            "termination_reason": reason,
            "last_error": scrub(error),
            "lease_expires_at": None,
            "completed_at": now or timezone.now(),
        }
        self._owned_transition(JobStatus.FAILED, changes, owner, sources)

    def release(self, owner: Owner, error: str, *, unpin: bool) -> None:
        """The host could not be reached at launch: LAUNCHING -> PENDING, no retry used up.

        ``unpin`` lets the next claim place the job on another host (only for jobs the user did
        not pin to this one).
        """
        changes: dict[str, Any] = {"lease_expires_at": None, "last_error": scrub(error)}
        if unpin:
            changes["docker_host"] = None
        self._owned_transition(JobStatus.PENDING, changes, owner, {JobStatus.LAUNCHING})

    def take_over(self, *, worker_id: str, lease_seconds: float) -> bool:
        """Become the owner of this active job, whose worker is gone; False if someone moved it first.

        Not a status change: the claim moves to ``worker_id`` with a new attempt, so the previous
        owner's writes, guarded by the old pair, can never land.
        """
        lease = timezone.now() + timedelta(seconds=lease_seconds)
        won = (
            type(self)
            .objects.filter(pk=self.pk, status__in=ACTIVE_STATUSES, worker_id=self.worker_id)
            .filter(status=self.status, attempt=self.attempt)
            .update(worker_id=worker_id, attempt=models.F("attempt") + 1, lease_expires_at=lease)
        )
        if won:
            self.worker_id = worker_id
            self.attempt += 1
            self.lease_expires_at = lease
        return bool(won)

    @classmethod
    def renew_leases(cls, worker_id: str, job_pks: Collection[str], lease_seconds: float) -> set[str]:
        """Extend the lease of every listed active job ``worker_id`` still owns; return the pks it lost.

        A lost lease is not a status change: another worker took the job over (``take_over``), and
        the one that lost it stops acting on it.
        """
        if not job_pks:
            return set()
        lease = timezone.now() + timedelta(seconds=lease_seconds)
        owned = cls.objects.filter(pk__in=list(job_pks), worker_id=worker_id, status__in=ACTIVE_STATUSES)
        if owned.update(lease_expires_at=lease) == len(job_pks):
            return set()
        still = {str(pk) for pk in owned.values_list("pk", flat=True)}
        return set(map(str, job_pks)) - still

    @classmethod
    def cancels_requested(cls, job_pks: Collection[str]) -> list[str]:
        """Return the pks among ``job_pks`` someone asked to cancel (the worker's cancel check)."""
        if not job_pks:
            return []
        wanted = cls.objects.filter(pk__in=list(job_pks), cancel_requested_at__isnull=False)
        return [str(pk) for pk in wanted.values_list("pk", flat=True)]

    # Events a person triggers (admin, API) ---------------------------------------------------------

    def request_cancel(self) -> CancelOutcome:
        """Cancel a queued job at once, or ask the worker to stop a launching or running one.

        Raises InvalidStateTransition if the job has already finished.
        """
        # A worker may claim the job between our read and our write; re-read and decide again.
        for _try in range(3):
            now = timezone.now()
            if self.status in CLAIMABLE_STATUSES:
                try:
                    self._transition(
                        JobStatus.CANCELLED,
                        {
                            "termination_reason": TerminationReason.CANCELLED,
                            "cancel_requested_at": now,
                            "completed_at": now,
                        },
                        sources=CLAIMABLE_STATUSES,
                    )
                except InvalidStateTransition:
                    self.refresh_from_db(fields=["status", "cancel_requested_at"])
                    continue
                self.append_event("Cancelled before launch.")
                return CancelOutcome.CANCELLED
            if self.status in ACTIVE_STATUSES:
                if self.cancel_requested_at is not None:
                    return CancelOutcome.REQUESTED
                requested = (
                    type(self)
                    .objects.filter(pk=self.pk, status__in=ACTIVE_STATUSES, cancel_requested_at__isnull=True)
                    .update(cancel_requested_at=now)
                )
                if requested:
                    self.cancel_requested_at = now
                    self.append_event("Cancellation requested; the worker will stop the container.")
                    return CancelOutcome.REQUESTED
                self.refresh_from_db(fields=["status", "cancel_requested_at"])
                continue
            raise InvalidStateTransition(self.pk, self.status, JobStatus.CANCELLED)
        raise InvalidStateTransition(self.pk, self.status, JobStatus.CANCELLED)

    def requeue(self) -> None:
        """Put a finished job back in the queue, clearing its results but keeping its history in docker_log.

        Raises InvalidStateTransition unless the job has finished, and HostUnavailable if its host
        cannot take jobs now.
        """
        if self.docker_host is not None:
            validation.check_host_available(self.docker_host)
        previous = (
            f"Re-queued. Previous run: status={self.status} exit_code={self.exit_code} "
            f"termination_reason={self.termination_reason or '-'} execution_id={self.execution_id or '-'} "
            f"attempt={self.attempt} stdout_chars={len(self.stdout_log)} stderr_chars={len(self.stderr_log)}"
        )
        if self.last_error:
            previous += f" last_error={self.last_error!r}"
        line = f"{timezone.now().isoformat()} {previous}\n"
        # ``attempt`` is kept: it only grows, so a worker still holding an old attempt cannot write.
        # The reset clears the claim (worker_id and all): changes, never conditions of the UPDATE.
        self._transition(
            JobStatus.PENDING,
            {**_RESULT_RESET, "docker_log": Concat(models.F("docker_log"), models.Value(line))},
            sources=FINISHED_STATUSES,
        )

    def duplicate(self) -> ContainerJob:
        """Queue a new PENDING job with the same spec (policy and host checks run again)."""
        copy = type(self).objects.create_job(
            self.docker_image,
            validation.decode_command(self.command, self.command_form) if self.command else None,
            self.name,
            environment_template=self.environment_template,
            environment_vars=dict(self.environment_overrides or {}),
            memory_limit=self.memory_limit,
            cpu_limit=self.cpu_limit,
            timeout_seconds=self.timeout_seconds,
            pids_limit=self.pids_limit,
            working_directory=self.working_directory,
            network_configuration=list(self.network_configuration or []),
            docker_host=self.docker_host,
            executor_type=self.executor_type or None,
            priority=self.priority,
            max_retries=self.max_retries,
            user=self.user or None,
        )
        copy.append_event(f"Duplicated from job {str(self.pk)!r}.")
        return copy


# What a re-queued job forgets: everything one run produced, and the claim.
_RESULT_RESET: Final[Mapping[str, Any]] = {
    "execution_id": "",
    "exit_code": None,
    "termination_reason": "",
    "stdout_log": "",
    "stderr_log": "",
    "clean_output": "",
    "parsed_output": None,
    "stdout_dropped_bytes": 0,
    "stderr_dropped_bytes": 0,
    "stdout_replaced_bytes": 0,
    "stderr_replaced_bytes": 0,
    "max_memory_usage": None,
    "cpu_usage_percent": None,
    "run_seconds": None,
    "launched_at": None,
    "started_at": None,
    "completed_at": None,
    "last_error": "",
    "worker_id": "",
    "lease_expires_at": None,
    "cancel_requested_at": None,
    "stop_reason": "",
    "retry_count": 0,
    "next_attempt_at": None,
    "interruption_count": 0,
}


@dataclass(frozen=True)
class Owner:
    """The claim a worker's write must still hold: the worker's id and the attempt it claimed.

    A guard, never a change: a worker that lost the job (taken over, re-queued, cancelled) holds
    an old pair, and its writes find no row to move.
    """

    worker_id: str
    attempt: int


# Jobs a claim may move to LAUNCHING, read from the transition table so the two cannot drift apart.
_CLAIM_SOURCES: Final = tuple(sorted(sources_of(JobStatus.LAUNCHING) & CLAIMABLE_STATUSES))

# Errors the database (or its driver, binding a value) raises for one row's data: a value out of
# range or too long, text it cannot hold, a constraint. Retrying cannot help, so they end that job
# alone. Errors of the database itself (OperationalError, InterfaceError: a lost connection, a
# restart) are not among them: the worker pauses and tries the same write again.
ROW_DATA_ERRORS: Final = (DataError, IntegrityError, OverflowError, ValueError)
# The harvested fields a result_unstorable job's last_error still tells.
_SUMMARY_FIELDS: Final = ("exit_code", "max_memory_usage", "cpu_usage_percent")


def _own_row_write(job: ContainerJob) -> AbstractContextManager[Any]:
    """Return a savepoint if a transaction is open, so a refused row leaves it usable; else nothing.

    The worker runs in autocommit, where a refused UPDATE leaves nothing to roll back: its path
    costs no extra statement.
    """
    using = router.db_for_write(type(job), instance=job)
    if transaction.get_connection(using).in_atomic_block:
        return transaction.atomic(using=using)
    return contextlib.nullcontext()


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {str(exc).strip()}".replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _claim_rows(
    pks: Collection[Any], claimable: Sequence[str], *, changes: Mapping[str, Any], host_pk: int
) -> int:
    """Move the listed jobs that are still claimable to LAUNCHING on ``host_pk``; return how many moved.

    Written by hand (see sqltext.py): the ORM compiled this UPDATE again for every claim. The
    status condition is the guard: a job cancelled since it was read stays where it is.
    """
    job = ContainerJob
    pk = job._meta.pk
    attempt = sqltext.column(job, "attempt")
    where = (
        f"{sqltext.name(job, pk.name)} IN ({sqltext.placeholders(pks)})"
        f" AND {sqltext.name(job, 'status')} IN ({sqltext.placeholders(claimable)})"
    )
    return sqltext.update(
        job,
        {"status": JobStatus.LAUNCHING.value, "docker_host": host_pk, **changes},
        where,
        [*(pk.get_db_prep_value(value, connection) for value in pks), *claimable],
        raw_assignments=[f"{attempt} = {attempt} + 1"],
    )


# Per-attempt history and followed logs live in their own module; imported here for the app registry.
from container_manager.attempts import JobAttempt as JobAttempt  # noqa: E402
from container_manager.attempts import LogChunk as LogChunk  # noqa: E402
