"""Read and check a Cloud Run host's configuration (``HostSpec.config``).

Credentials never live here: they come from Google's standard auth chain. The only credential
setting is ``"credentials": "anonymous"``, which exists for a local fake or emulator and is refused
anywhere but a loopback endpoint.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from cloudrun_executor.capabilities import ACCEPTABLE
from container_manager_core.types import HostSpec, Violation

DEFAULT_JOB_NAME_PREFIX = "cm"
DEFAULT_API_TIMEOUT_SECONDS = 30.0
DEFAULT_HEALTH_TIMEOUT_SECONDS = 5.0
DEFAULT_LOG_CAP_BYTES = 1024 * 1024  # per stream, like the other executors' caps
# Cloud Run's Admin API has per-minute read quotas per region: an execution's state is read at most
# this often once it has run a while (the first reads come sooner, one second apart and doubling).
DEFAULT_STATUS_POLL_SECONDS = 10.0
# Log entries reach Cloud Logging seconds, sometimes about a minute, after they are printed: the
# harvest waits for the last attempt's exit entry, then for this long without a new entry...
DEFAULT_LOG_QUIET_SECONDS = 10.0
# ...but never longer than this in all, nor for a task result that has not been filled in yet.
DEFAULT_LOG_WAIT_SECONDS = 120.0
# A managed job with no execution this old is a leftover of a launch that failed half-way: swept.
DEFAULT_ORPHAN_JOB_SECONDS = 600.0
VPC_EGRESS_VALUES = ("all-traffic", "private-ranges-only")
CREDENTIAL_MODES = ("default", "anonymous")

# Project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter; legacy
# domain-scoped projects ("example.com:name") carry a domain prefix.
_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# Regions look like "us-central1", "europe-west4", "northamerica-northeast1".
_REGION = re.compile(r"^[a-z]+(?:-[a-z]+)+[0-9]+$")
# The prefix starts every job name, which must start with a letter; it is kept short so the job id
# still shows in the name.
_PREFIX = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
_ENDPOINT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})$")
_SERVICE_ACCOUNT = re.compile(r"^[^@\s]+@[^@\s]+$")

KNOWN_KEYS = frozenset(
    {
        "project",
        "region",
        "service_account",
        "vpc_connector",
        "vpc_egress",
        "job_name_prefix",
        "delete_after_run",
        "api_endpoint",
        "logging_endpoint",
        "credentials",
        "api_timeout_seconds",
        "health_timeout_seconds",
        "log_cap_bytes",
        "status_poll_seconds",
        "log_quiet_seconds",
        "log_wait_seconds",
        "orphan_job_seconds",
        "accept_unenforced",
        # Read by the core policy (registry allow-list), not by this plugin.
        "allowed_registries",
    }
)


class ConfigError(ValueError):
    """The host configuration is unusable; the message lists every problem."""


@attrs.frozen
class CloudRunConfig:
    """The validated, typed form of a Cloud Run host's configuration."""

    project: str
    region: str
    service_account: str | None = None
    vpc_connector: str | None = None
    vpc_egress: str | None = None
    job_name_prefix: str = DEFAULT_JOB_NAME_PREFIX
    # Every job id gets its own Cloud Run job, and a region holds a limited number of jobs, so
    # they are deleted with their execution unless the operator wants to keep them for inspection.
    delete_after_run: bool = True
    api_endpoint: str | None = None
    logging_endpoint: str | None = None
    anonymous: bool = False
    api_timeout_seconds: float = DEFAULT_API_TIMEOUT_SECONDS
    health_timeout_seconds: float = DEFAULT_HEALTH_TIMEOUT_SECONDS
    log_cap_bytes: int = DEFAULT_LOG_CAP_BYTES
    status_poll_seconds: float = DEFAULT_STATUS_POLL_SECONDS
    log_quiet_seconds: float = DEFAULT_LOG_QUIET_SECONDS
    log_wait_seconds: float = DEFAULT_LOG_WAIT_SECONDS
    orphan_job_seconds: float = DEFAULT_ORPHAN_JOB_SECONDS
    # The manager deployment the jobs belong to (HostSpec.owner), kept as a label.
    owner: str = "default"
    # Protections Cloud Run cannot enforce that the operator accepts running jobs without.
    accept_unenforced: frozenset[str] = frozenset()

    @property
    def location(self) -> str:
        """Return the ``projects/{project}/locations/{region}`` parent of this host's jobs."""
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def connector(self) -> str | None:
        """Return the VPC connector's full name; a short name is taken to live in this host's region."""
        if self.vpc_connector is None or "/" in self.vpc_connector:
            return self.vpc_connector
        return f"{self.location}/connectors/{self.vpc_connector}"


def load_config(host: HostSpec) -> CloudRunConfig:
    """Return the host's typed configuration; raise :class:`ConfigError` listing every problem."""
    problems = list(config_violations(host))
    if problems:
        raise ConfigError(" ".join(v.message for v in problems))
    cfg = host.config
    return CloudRunConfig(
        project=cfg["project"],
        region=cfg["region"],
        service_account=cfg.get("service_account") or None,
        vpc_connector=cfg.get("vpc_connector") or None,
        vpc_egress=cfg.get("vpc_egress") or None,
        job_name_prefix=cfg.get("job_name_prefix", DEFAULT_JOB_NAME_PREFIX),
        delete_after_run=cfg.get("delete_after_run", True),
        api_endpoint=cfg.get("api_endpoint") or None,
        logging_endpoint=cfg.get("logging_endpoint") or None,
        anonymous=cfg.get("credentials", "default") == "anonymous",
        api_timeout_seconds=float(cfg.get("api_timeout_seconds", DEFAULT_API_TIMEOUT_SECONDS)),
        health_timeout_seconds=float(cfg.get("health_timeout_seconds", DEFAULT_HEALTH_TIMEOUT_SECONDS)),
        log_cap_bytes=int(cfg.get("log_cap_bytes", DEFAULT_LOG_CAP_BYTES)),
        status_poll_seconds=float(cfg.get("status_poll_seconds", DEFAULT_STATUS_POLL_SECONDS)),
        log_quiet_seconds=float(cfg.get("log_quiet_seconds", DEFAULT_LOG_QUIET_SECONDS)),
        log_wait_seconds=float(cfg.get("log_wait_seconds", DEFAULT_LOG_WAIT_SECONDS)),
        orphan_job_seconds=float(cfg.get("orphan_job_seconds", DEFAULT_ORPHAN_JOB_SECONDS)),
        owner=host.owner,
        accept_unenforced=accepted_unenforced(cfg),
    )


def accepted_unenforced(cfg: Mapping[str, Any]) -> frozenset[str]:
    """Return the protections a host's ``accept_unenforced`` lists; a malformed setting accepts nothing."""
    value = cfg.get("accept_unenforced")
    if not isinstance(value, list | tuple):
        return frozenset()
    return frozenset(entry for entry in value if isinstance(entry, str) and entry in ACCEPTABLE)


def config_violations(host: HostSpec) -> Iterator[Violation]:
    """Yield every problem with a Cloud Run host's configuration."""
    cfg = host.config
    name = host.name
    for key in sorted(set(cfg) - KNOWN_KEYS):
        yield _bad(
            "cloudrun_config_unknown_key",
            f"Cloud Run host {name!r} has the unknown config key {key!r}; known keys are "
            f"{sorted(KNOWN_KEYS)!r}.",
        )
    yield from _required_pattern(
        name, cfg, "project", _PROJECT, "a Google Cloud project id such as 'my-project'"
    )
    yield from _required_pattern(name, cfg, "region", _REGION, "a Cloud Run region such as 'europe-west1'")
    yield from _optional_pattern(
        name, cfg, "job_name_prefix", _PREFIX, "1-20 lowercase letters, digits or '-', starting with a letter"
    )
    yield from _optional_pattern(name, cfg, "service_account", _SERVICE_ACCOUNT, "a service account email")
    yield from _vpc(name, cfg)
    yield from _endpoints(name, cfg)
    yield from _credentials(name, cfg)
    yield from _numbers(name, cfg)
    yield from _accept_unenforced(name, cfg)
    if "delete_after_run" in cfg and not isinstance(cfg["delete_after_run"], bool):
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r}: delete_after_run must be true or false, got {cfg['delete_after_run']!r}.",
            "delete_after_run",
        )
    if host.connection_string:
        yield _bad(
            "cloudrun_connection_string_unused",
            f"Cloud Run host {name!r} has connection string {host.connection_string!r}, which Cloud Run "
            "does not use; set api_endpoint in the config for a non-default endpoint.",
            "connection_string",
        )
    if host.tls is not None:
        yield _bad(
            "cloudrun_tls_unused",
            f"Cloud Run host {name!r} has TLS client settings, which Cloud Run does not use: Google's "
            "endpoints are always TLS and authenticate with Google credentials.",
            "tls",
        )


def _bad(code: str, message: str, key: str | None = None) -> Violation:
    return Violation(code, message, f"config.{key}" if key else "config")


def _required_pattern(
    name: str, cfg: Mapping[str, Any], key: str, pattern: re.Pattern[str], meaning: str
) -> Iterator[Violation]:
    if not cfg.get(key):
        yield _bad("cloudrun_config_missing", f"Cloud Run host {name!r} needs {key!r}: {meaning}.", key)
    else:
        yield from _optional_pattern(name, cfg, key, pattern, meaning)


def _optional_pattern(
    name: str, cfg: Mapping[str, Any], key: str, pattern: re.Pattern[str], meaning: str
) -> Iterator[Violation]:
    value = cfg.get(key)
    if value is None or value == "":
        return
    if not isinstance(value, str) or not pattern.match(value):
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r}: {key} must be {meaning}, got {value!r}.",
            key,
        )


def _vpc(name: str, cfg: Mapping[str, Any]) -> Iterator[Violation]:
    egress = cfg.get("vpc_egress")
    connector = cfg.get("vpc_connector")
    if connector is not None and (not isinstance(connector, str) or not connector.strip()):
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r}: vpc_connector must be a connector name, got {connector!r}.",
            "vpc_connector",
        )
    if egress is None:
        return
    if egress not in VPC_EGRESS_VALUES:
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r}: vpc_egress must be one of {list(VPC_EGRESS_VALUES)!r}, got {egress!r}.",
            "vpc_egress",
        )
    elif not connector:
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r} sets vpc_egress={egress!r} without a vpc_connector to send traffic through.",
            "vpc_egress",
        )


def _endpoints(name: str, cfg: Mapping[str, Any]) -> Iterator[Violation]:
    for key in ("api_endpoint", "logging_endpoint"):
        value = cfg.get(key)
        if value is None:
            continue
        match = _ENDPOINT.match(value) if isinstance(value, str) else None
        if match is None or not 0 < int(match["port"]) < 65536:
            yield _bad(
                "cloudrun_config_invalid",
                f"Cloud Run host {name!r}: {key} must be HOST:PORT (no scheme), got {value!r}.",
                key,
            )


def _credentials(name: str, cfg: Mapping[str, Any]) -> Iterator[Violation]:
    mode = cfg.get("credentials", "default")
    if mode not in CREDENTIAL_MODES:
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r}: credentials must be one of {list(CREDENTIAL_MODES)!r} (keys come "
            f"from Google's auth chain, never from the database), got {mode!r}.",
            "credentials",
        )
        return
    if mode != "anonymous":
        return
    # Anonymous credentials send no identity and the channel is plaintext: only a local fake or
    # emulator may be reached that way.
    endpoints = [cfg.get("api_endpoint"), cfg.get("logging_endpoint")]
    if not cfg.get("api_endpoint") or not all(e is None or is_loopback_endpoint(e) for e in endpoints):
        yield _bad(
            "cloudrun_anonymous_not_local",
            f"Cloud Run host {name!r}: credentials 'anonymous' is only allowed together with an api_endpoint "
            "(and logging_endpoint, if set) on 127.0.0.1, [::1] or localhost, for a local fake or emulator.",
            "credentials",
        )


def _accept_unenforced(name: str, cfg: Mapping[str, Any]) -> Iterator[Violation]:
    value = cfg.get("accept_unenforced")
    if value is None:
        return
    known = list(ACCEPTABLE)
    if not isinstance(value, list | tuple) or not all(isinstance(entry, str) for entry in value):
        yield _bad(
            "cloudrun_config_invalid",
            f"Cloud Run host {name!r}: accept_unenforced must be a list of protection names from {known!r}, "
            f"got {value!r}.",
            "accept_unenforced",
        )
        return
    for entry in value:
        if entry not in ACCEPTABLE:
            yield _bad(
                "cloudrun_config_invalid",
                f"Cloud Run host {name!r}: accept_unenforced lists {entry!r}, which is not a protection "
                f"Cloud Run leaves unenforced; known: {known!r}.",
                "accept_unenforced",
            )


def _numbers(name: str, cfg: Mapping[str, Any]) -> Iterator[Violation]:
    for key in (
        "api_timeout_seconds",
        "health_timeout_seconds",
        "log_cap_bytes",
        "status_poll_seconds",
        "log_quiet_seconds",
        "log_wait_seconds",
        "orphan_job_seconds",
    ):
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            yield _bad(
                "cloudrun_config_invalid",
                f"Cloud Run host {name!r}: {key} must be a positive number, got {value!r}.",
                key,
            )
        elif key == "log_cap_bytes" and not isinstance(value, int):
            yield _bad(
                "cloudrun_config_invalid",
                f"Cloud Run host {name!r}: log_cap_bytes must be a whole number of bytes, got {value!r}.",
                key,
            )


def is_loopback_endpoint(endpoint: object) -> bool:
    """Say whether ``endpoint`` is ``HOST:PORT`` on this machine's loopback interface."""
    if not isinstance(endpoint, str):
        return False
    match = _ENDPOINT.match(endpoint)
    if match is None:
        return False
    host = match["host"].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
