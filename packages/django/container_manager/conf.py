"""The app's settings: one ``CONTAINER_MANAGER`` dict, read lazily into a typed, frozen object."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from container_manager_core.policy import check_user
from container_manager_core.types import OWNER_PATTERN, JobSpec, PolicyLimits

MIB = 1024 * 1024
# A bearer token as RFC 6750 spells one (b64token), long enough not to be guessed by trying.
METRICS_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]{16,}=*")

# Settings that must be positive numbers, and whether a float is acceptable.
_POSITIVE_INTS = (
    "MAX_MEMORY_MB",
    "MIN_MEMORY_MB",
    "MAX_TIMEOUT_SECONDS",
    "MAX_PIDS",
    "MAX_TMPFS_MB",
    "MIN_UID",
    "MAX_ENV_VAR_BYTES",
    "MAX_ENV_BYTES",
    "MAX_COMMAND_BYTES",
    "DEFAULT_MEMORY_LIMIT_MB",
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_PIDS_LIMIT",
    "LOG_CAP_BYTES",
    "LEASE_SECONDS",
    "STOP_GRACE_SECONDS",
    "METRICS_WINDOW_SECONDS",
)
_POSITIVE_NUMBERS = (
    "MAX_CPU",
    "MIN_CPU",
    "DEFAULT_CPU_LIMIT",
    "POLL_INTERVAL",
    "HEALTH_CHECK_INTERVAL",
    "RECONCILE_INTERVAL",
    "SHUTDOWN_GRACE_SECONDS",
    "RETRY_BACKOFF_BASE_SECONDS",
    "RETRY_BACKOFF_MAX_SECONDS",
    "MEMORY_OVERCOMMIT",
    "CPU_OVERCOMMIT",
)
# Each default must fit under its maximum, or every job relying on the default would be rejected.
_DEFAULT_WITHIN_MAX = (
    ("DEFAULT_MEMORY_LIMIT_MB", "MAX_MEMORY_MB"),
    ("DEFAULT_CPU_LIMIT", "MAX_CPU"),
    ("MIN_CPU", "DEFAULT_CPU_LIMIT"),
    ("MIN_MEMORY_MB", "DEFAULT_MEMORY_LIMIT_MB"),
    ("DEFAULT_TIMEOUT_SECONDS", "MAX_TIMEOUT_SECONDS"),
    ("DEFAULT_PIDS_LIMIT", "MAX_PIDS"),
    ("RETRY_BACKOFF_BASE_SECONDS", "RETRY_BACKOFF_MAX_SECONDS"),
)
# Linux refuses to exec a single argument or NAME=value string of 128 KiB or more (MAX_ARG_STRLEN),
# and all of them together beyond a few MiB (ARG_MAX): a larger maximum would let E2BIG through.
_KERNEL_CEILINGS = (
    ("MAX_ENV_VAR_BYTES", 128 * 1024 - 1),
    ("MAX_COMMAND_BYTES", 128 * 1024 - 1),
    ("MAX_ENV_BYTES", MIB),
)


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """Every ``CONTAINER_MANAGER`` key with its default; maxima are never unlimited."""

    # Policy maxima (container_manager_core.types.PolicyLimits).
    MAX_MEMORY_MB: int = 2048
    # The smallest memory limit: Docker Engine refuses to start a container with less than 6 MB.
    MIN_MEMORY_MB: int = 6
    MAX_CPU: float = 2.0
    # The smallest CPU limit: below 0.01 an engine rounds the CPU quota to none, which is unlimited.
    MIN_CPU: float = 0.01
    MAX_TIMEOUT_SECONDS: int = 3600
    MAX_PIDS: int = 1024
    MAX_TMPFS_MB: int = 512
    MIN_UID: int = 1001
    # Size limits in bytes (UTF-8): one NAME=value, the whole environment, the command's arguments.
    MAX_ENV_VAR_BYTES: int = 64 * 1024
    MAX_ENV_BYTES: int = 256 * 1024
    MAX_COMMAND_BYTES: int = 64 * 1024
    # The most re-runs a job may ask for (create_job's max_retries).
    MAX_RETRIES: int = 10
    ALLOWED_REGISTRIES: tuple[str, ...] | None = None
    # Only for images that cannot run with a read-only root filesystem; the policy refuses it otherwise.
    ALLOW_WRITABLE_ROOT: bool = False
    # Refuse hosts whose engine runs containers without user namespaces (Docker: neither userns-remap
    # nor rootless), so root in a container is never root on the machine. On by default: the safe
    # setting is the product. Turn it off only for engines that cannot remap yet (a laptop, a CI
    # runner); the system check container_manager.W003 warns while it is off and DEBUG is off.
    REQUIRE_USER_NAMESPACES: bool = True

    # What create_job fills in when the caller leaves a value out.
    DEFAULT_MEMORY_LIMIT_MB: int = 256
    DEFAULT_CPU_LIMIT: float = 1.0
    DEFAULT_TIMEOUT_SECONDS: int = 600
    DEFAULT_PIDS_LIMIT: int = 256
    DEFAULT_USER: str = "1001:1001"
    # None: the host decides (a Docker host's "default_network", bridge unless set; Cloud Run has no
    # network modes at all). "none" cuts every job without network_configuration off the network.
    DEFAULT_NETWORK_MODE: str | None = None
    DEFAULT_EXECUTOR_TYPE: str = "docker"

    # The worker.
    POLL_INTERVAL: float = 1.0
    HEALTH_CHECK_INTERVAL: float = 30
    LEASE_SECONDS: int = 60
    RECONCILE_INTERVAL: float = 30
    LOG_CAP_BYTES: int = MIB
    # Where followed log chunks go: None for the database, else a key of Django's STORAGES (object
    # storage, say). Days they are kept after the attempt's harvest (purge_job_logs); None: for ever.
    LOG_STORAGE: str | None = None
    LOG_RETENTION_DAYS: int | None = None
    CLEANUP_AFTER_HARVEST: bool = True
    SHUTDOWN_GRACE_SECONDS: float = 30
    STOP_GRACE_SECONDS: int = 10
    RETRY_BACKOFF_BASE_SECONDS: float = 5
    RETRY_BACKOFF_MAX_SECONDS: float = 600

    # Placement: a host takes a job only while the memory and CPU limits of its active jobs plus the
    # job's own fit in its capacity (the engine's, or the host's override) times these ratios.
    # Memory is not compressible: over-committed, jobs are OOM-killed, so the default promises
    # every job the memory it asked for. CPU is: a CPU limit is a ceiling (a CFS quota), not a
    # reservation, and jobs over-committed on CPU run slower but are never killed, while most jobs
    # spend much of their time waiting on I/O; 1.0 would leave a 2-core host running two 1-CPU jobs
    # and mostly idle. The bound (OpenStack Nova's initial CPU ratio too) keeps CPU-bound jobs from
    # being slowed past their timeouts. Set 1.0 for CPU-bound work that must get its cores.
    MEMORY_OVERCOMMIT: float = 1.0
    CPU_OVERCOMMIT: float = 4.0

    # Retention: ``purge_finished_jobs`` deletes finished jobs, logs and all, that completed more than
    # this many days ago. None keeps them for ever.
    FINISHED_JOB_RETENTION_DAYS: float | None = 30

    # Which deployment owns the containers this manager launches (HostSpec.owner): plugins label
    # every execution with it, and crash recovery only adopts or removes executions with its own
    # owner. None: derived from the default database, so deployments that share a database share
    # their jobs, and deployments with different databases never touch each other's containers.
    MANAGER_ID: str | None = None

    # The Prometheus endpoint (container_manager.metrics, opt-in by URL include). The window is how
    # far back its figures over finished jobs look. A scrape must bring the token (``Authorization:
    # Bearer ...``) and come from one of the networks, for each that is set; None checks nothing.
    METRICS_WINDOW_SECONDS: int = 300
    METRICS_TOKEN: str | None = field(default=None, repr=False)  # a secret: never in a repr
    METRICS_ALLOWED_NETWORKS: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            _require_positive(name, getattr(self, name), integer=True)
        for name in _POSITIVE_NUMBERS:
            _require_positive(name, getattr(self, name), integer=False)
        for default, maximum in _DEFAULT_WITHIN_MAX:
            if getattr(self, default) > getattr(self, maximum):
                raise ImproperlyConfigured(
                    f"CONTAINER_MANAGER[{default!r}] is {getattr(self, default)!r}, above "
                    f"CONTAINER_MANAGER[{maximum!r}] = {getattr(self, maximum)!r}; every job using the "
                    "default would be rejected."
                )
        for name, ceiling in _KERNEL_CEILINGS:
            if getattr(self, name) > ceiling:
                raise ImproperlyConfigured(
                    f"CONTAINER_MANAGER[{name!r}] is {getattr(self, name)!r}, above {ceiling!r} bytes: the "
                    "kernel would refuse to start such a job (E2BIG), and it would fail without a message."
                )
        retries: object = self.MAX_RETRIES
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ImproperlyConfigured(
                f"CONTAINER_MANAGER['MAX_RETRIES'] must be a whole number of at least 0, got {retries!r}."
            )
        for name in ("CLEANUP_AFTER_HARVEST", "ALLOW_WRITABLE_ROOT", "REQUIRE_USER_NAMESPACES"):
            if not isinstance(getattr(self, name), bool):
                raise ImproperlyConfigured(
                    f"CONTAINER_MANAGER[{name!r}] must be True or False, got {getattr(self, name)!r}."
                )
        for name in ("DEFAULT_NETWORK_MODE", "DEFAULT_EXECUTOR_TYPE"):
            value = getattr(self, name)
            if name == "DEFAULT_NETWORK_MODE" and value is None:
                continue
            if not isinstance(value, str) or not value:
                raise ImproperlyConfigured(
                    f"CONTAINER_MANAGER[{name!r}] must be a non-empty string, got {value!r}."
                )
        if self.FINISHED_JOB_RETENTION_DAYS is not None:
            _require_positive("FINISHED_JOB_RETENTION_DAYS", self.FINISHED_JOB_RETENTION_DAYS, integer=False)
        self._check_user()
        self._check_metrics_access()
        self._check_log_storage()
        manager_id: object = self.MANAGER_ID  # whatever the settings dict held
        if manager_id is not None and (
            not isinstance(manager_id, str) or not OWNER_PATTERN.match(manager_id)
        ):
            raise ImproperlyConfigured(
                "CONTAINER_MANAGER['MANAGER_ID'] must be 1-63 lowercase letters, digits, '-' or '_', "
                f"got {self.MANAGER_ID!r}."
            )
        # Normalise sequences once so the object is hashable and cannot be mutated through a list.
        if self.ALLOWED_REGISTRIES is not None:
            object.__setattr__(
                self, "ALLOWED_REGISTRIES", _str_tuple("ALLOWED_REGISTRIES", self.ALLOWED_REGISTRIES)
            )

    def _check_log_storage(self) -> None:
        storage: object = self.LOG_STORAGE
        if storage is not None and (not isinstance(storage, str) or not storage):
            raise ImproperlyConfigured(
                "CONTAINER_MANAGER['LOG_STORAGE'] must be None (the database) or the name of a storage "
                f"in STORAGES, got {storage!r}."
            )
        days: object = self.LOG_RETENTION_DAYS
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            raise ImproperlyConfigured(
                "CONTAINER_MANAGER['LOG_RETENTION_DAYS'] must be None (keep for ever) or a whole number "
                f"of days of at least 1, got {days!r}."
            )

    def _check_user(self) -> None:
        # The policy's own rule, so the default can never be a user the policy would refuse.
        spec = JobSpec(job_id="DEFAULT_USER", image="DEFAULT_USER", user=self.DEFAULT_USER)
        if problems := list(check_user(None, spec, PolicyLimits(min_uid=self.MIN_UID))):
            raise ImproperlyConfigured(
                f"CONTAINER_MANAGER['DEFAULT_USER'] is {self.DEFAULT_USER!r}, which the policy refuses: "
                + " ".join(p.message for p in problems)
            )

    def _check_metrics_access(self) -> None:
        token: object = self.METRICS_TOKEN
        if token is not None and (not isinstance(token, str) or not METRICS_TOKEN_PATTERN.fullmatch(token)):
            # Never the value: it is (or was meant to be) a secret.
            raise ImproperlyConfigured(
                "CONTAINER_MANAGER['METRICS_TOKEN'] must be None or a string of at least 16 characters "
                f"from A-Z a-z 0-9 - . _ ~ + / = (a bearer token), got a {type(token).__name__}"
                + (f" of {len(token)} characters." if isinstance(token, str) else ".")
            )
        if self.METRICS_ALLOWED_NETWORKS is None:
            return
        networks = _str_tuple("METRICS_ALLOWED_NETWORKS", self.METRICS_ALLOWED_NETWORKS)
        for network in networks:
            try:
                ipaddress.ip_network(network)
            except ValueError as exc:
                raise ImproperlyConfigured(
                    f"CONTAINER_MANAGER['METRICS_ALLOWED_NETWORKS'] holds {network!r}, which is not an "
                    f"address or a network such as '10.0.0.0/8': {exc}."
                ) from exc
        object.__setattr__(self, "METRICS_ALLOWED_NETWORKS", networks)

    def manager_id(self) -> str:
        """Return MANAGER_ID, or an id derived from the default database's identity."""
        if self.MANAGER_ID is not None:
            return self.MANAGER_ID
        return database_owner_id()

    def policy_limits(self) -> PolicyLimits:
        """Return the core's policy maxima built from these settings."""
        try:
            return PolicyLimits(
                max_memory_mb=self.MAX_MEMORY_MB,
                min_memory_mb=self.MIN_MEMORY_MB,
                max_cpu=self.MAX_CPU,
                min_cpu=self.MIN_CPU,
                max_timeout_seconds=self.MAX_TIMEOUT_SECONDS,
                max_pids=self.MAX_PIDS,
                max_tmpfs_bytes=self.MAX_TMPFS_MB * MIB,
                min_uid=self.MIN_UID,
                max_env_var_bytes=self.MAX_ENV_VAR_BYTES,
                max_env_bytes=self.MAX_ENV_BYTES,
                max_command_bytes=self.MAX_COMMAND_BYTES,
                allowed_registries=self.ALLOWED_REGISTRIES,
                allow_writable_root=self.ALLOW_WRITABLE_ROOT,
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"CONTAINER_MANAGER has invalid policy limits: {exc}") from exc


def database_owner_id() -> str:
    """Return a stable id for the default database (engine, host, port, name).

    Read from the live connection each time, so a test database gets its own id. An in-memory
    SQLite database lives in one process only, so its id includes the process id.
    """
    from django.db import connections

    db = connections["default"].settings_dict
    parts = [str(db.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "NAME")]
    name = parts[-1]
    if name == ":memory:" or "mode=memory" in name:
        parts.append(str(os.getpid()))
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"db-{digest}"


def _require_positive(name: str, value: object, *, integer: bool) -> None:
    # None and 0 would mean "unlimited" to many engines; a maximum or default is never unlimited.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        kind = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"CONTAINER_MANAGER[{name!r}] must be {kind}, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ImproperlyConfigured(
            f"CONTAINER_MANAGER[{name!r}] must be a positive finite number, got {value!r}; limits are never unlimited."
        )


def _str_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple | frozenset | set):
        raise ImproperlyConfigured(f"CONTAINER_MANAGER[{name!r}] must be a list of strings, got {value!r}.")
    if not all(isinstance(item, str) and item for item in value):
        raise ImproperlyConfigured(f"CONTAINER_MANAGER[{name!r}] must hold non-empty strings, got {value!r}.")
    return tuple(value)


_KEYS = frozenset(f.name for f in fields(AppSettings))


@functools.cache
def app_settings() -> AppSettings:
    """Return the validated ``CONTAINER_MANAGER`` settings (cached until the setting changes)."""
    user = getattr(settings, "CONTAINER_MANAGER", None) or {}
    if not isinstance(user, Mapping):
        raise ImproperlyConfigured(f"CONTAINER_MANAGER must be a dict, got {type(user).__name__}.")
    if unknown := set(user) - _KEYS:
        raise ImproperlyConfigured(
            f"Unknown CONTAINER_MANAGER keys: {sorted(map(str, unknown))}. Known keys: {sorted(_KEYS)}."
        )
    return AppSettings(**user)


@receiver(setting_changed)
def _reset_app_settings(*, setting: str, **kwargs: Any) -> None:
    # As django.tasks clears its handlers: override_settings must be seen at once.
    if setting == "CONTAINER_MANAGER":
        app_settings.cache_clear()
