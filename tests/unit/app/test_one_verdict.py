"""One verdict per input, whichever door it comes through: create_job, the admin form, the worker's
check of a row changed behind create_job's back, and the Docker plugin's guard on the final request.
Then one rule per concept the audit found copied: the Docker address, what is claimable, "137 means
OOM", the managed labels and DEFAULT_USER, each fed through every entry point.

Each case is one finding of the issue 15 audit (or the safe input next to it). No engine is needed:
the guard reads the create body the plugin would send.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone
from docker_executor.connection import connection_key
from docker_executor.guard import payload_violations
from docker_executor.naming import container_labels, job_id_of, owner_filter
from docker_executor.oom import oom_killed
from docker_executor.payload import build_create_payload

from container_manager.conf import app_settings
from container_manager.forms import ContainerJobForm, ExecutorHostForm
from container_manager.health import unusable_reason
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from container_manager.worker import claim_sql
from container_manager.worker.outcome import termination_reason
from container_manager_core import labels
from container_manager_core.envfile import format_env_text
from container_manager_core.errors import HostMisconfigured
from container_manager_core.types import ExecutionState, ExecutionStatus

pytestmark = pytest.mark.django_db

IMAGE = "docker.io/library/busybox:1.36"
_numbers = itertools.count()
HEX = "a" * 64


@dataclass(frozen=True)
class Case:
    """``job`` changes the job's fields, ``host`` the host's executor_config; ``code`` is None if accepted."""

    job: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    code: str | tuple[str, ...] | None = None
    guard: bool = True  # whether the engine request carries the setting at all


CASES = {
    # CPU: below 0.01 core the engine's CFS quota rounds to none.
    "cpu 1e-6": Case({"cpu_limit": 1e-6}, code="cpu_limit_too_low"),
    "cpu 0.009": Case({"cpu_limit": 0.009}, code="cpu_limit_too_low"),
    "cpu at the floor": Case({"cpu_limit": 0.01}),
    # Users: the group is explicit and never 0; zeros and names are read as the engine reads them.
    "uid only": Case({"user": "1001"}),
    "uid with leading zeros": Case({"user": "00001001"}),
    "nobody's uid": Case({"user": "65534"}),
    "uid 0 spelled 00": Case({"user": "00"}, code=("user_uid_too_low", "user_gid_root")),
    "uid and gid 0 with zeros": Case({"user": "0000:0000"}, code=("user_uid_too_low", "user_gid_root")),
    "gid 0": Case({"user": "1001:0"}, code="user_gid_root"),
    "a name": Case({"user": "nobody"}, code="user_invalid"),
    # Image IDs on a host that allows only docker.io/library.
    "short image id": Case(
        {"docker_image": "abc123"}, {"allowed_registries": ["docker.io/library"]}, "image_id_not_allowed"
    ),
    "digest without repository": Case(
        {"docker_image": f"sha256:{HEX}"},
        {"allowed_registries": ["docker.io/library"]},
        "image_id_not_allowed",
    ),
    "allowed repository": Case(
        {"docker_image": "busybox:1.36"}, {"allowed_registries": ["docker.io/library"]}
    ),
    "pinned allowed repository": Case(
        {"docker_image": f"busybox@sha256:{HEX}"}, {"allowed_registries": ["docker.io/library"]}
    ),
    # Host defaults go through the same rules as the job's own fields.
    "another container's network": Case(
        host={"default_network": "container:victim"}, code="shared_network_namespace"
    ),
    "the host's network": Case(host={"default_network": "host"}, code="host_network"),
    "unbounded engine logs": Case(host={"log_max_size": "1000000g"}, code="log_limits_invalid"),
    "bounded engine logs": Case(host={"log_max_size": "20m", "log_max_file": 3}),
    "no init": Case(host={"use_init": False}, code="init_disabled"),
    # Not container settings: the guard never sees them, the policy and the worker do.
    "a billion retries": Case({"max_retries": 1_000_000_000}, code="max_retries_too_high", guard=False),
    "ten retries": Case({"max_retries": 10}, guard=False),
    "a 200 KB variable": Case(
        {"environment_overrides": {"BIG": "x" * 200_000}}, code="env_var_too_large", guard=False
    ),
    "a 300 KB command": Case({"command": "echo " + "x" * 300_000}, code="command_too_large", guard=False),
}


def make_docker_host(config: dict[str, Any]) -> ExecutorHost:
    return ExecutorHost.objects.create(
        name=f"engine-{next(_numbers)}",
        executor_type="docker",
        host_type="unix",
        connection_string="unix:///var/run/docker.sock",
        executor_config={"default_network": "none", **config},
    )


def create_job_verdict(host: ExecutorHost, changes: dict[str, Any]) -> set[str]:
    fields = {"docker_image": IMAGE, "command": "true", **changes}
    kwargs: dict[str, Any] = {
        "cpu_limit": fields.pop("cpu_limit", None),
        "user": fields.pop("user", None),
        "max_retries": fields.pop("max_retries", 0),
        "environment_vars": fields.pop("environment_overrides", None),
    }
    try:
        ContainerJob.objects.create_job(
            fields.pop("docker_image"), fields.pop("command"), docker_host=host, **kwargs
        )
    except ValidationError as exc:
        return {e.code for errors in exc.error_dict.values() for e in errors if e.code}
    return set()


def form_verdict(host: ExecutorHost, changes: dict[str, Any]) -> set[str]:
    template = ContainerJobForm(instance=ContainerJob(docker_host=host, docker_image=IMAGE, command="true"))
    data: dict[str, Any] = {name: template[name].value() for name in template.fields}
    data = {k: v for k, v in data.items() if v is not None}
    data.update(memory_limit=64, cpu_limit=0.5, pids_limit=64, timeout_seconds=60, user="1001:1001")
    # The admin's overrides are NAME=value lines (values are write-only there).
    data.update(environment_overrides="", network_configuration="[]")
    for key, value in changes.items():
        data[key] = value if key != "environment_overrides" else format_env_text(value)
    form = ContainerJobForm(data=data)
    if form.is_valid():
        return set()
    return {e.code for errors in form.errors.as_data().values() for e in errors if e.code}


def queued_then_changed(case: Case) -> tuple[ContainerJob, ExecutorHost]:
    """Queue a job that passes, then change its row and its host's row behind create_job's back."""
    host = make_docker_host({})
    job = ContainerJob.objects.create_job(IMAGE, "true", docker_host=host)
    if case.job:
        ContainerJob.objects.filter(pk=job.pk).update(**case.job)
    if case.host:
        ExecutorHost.objects.filter(pk=host.pk).update(
            executor_config={"default_network": "none", **case.host}
        )
    job = ContainerJob.objects.select_related("docker_host").get(pk=job.pk)
    assert job.docker_host is not None
    return job, job.docker_host


def worker_verdict(case: Case) -> set[str]:
    job, host = queued_then_changed(case)
    # What the worker calls for each claimed row, before anything goes to the engine.
    return {v.code for v in job.launch_violations(job.to_spec(), host.to_spec(), app_settings())}


def guard_verdict(case: Case) -> set[str]:
    job, host = queued_then_changed(case)
    spec, host_spec = job.to_spec(), host.to_spec()
    try:
        payload = build_create_payload(host_spec, spec, "1.41")
    except HostMisconfigured:  # the typed host config refuses it: no request is ever built
        return {"host_misconfigured"}
    return {v.code for v in payload_violations(payload.config, host_spec, payload.extra_networks)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_entry_point_gives_the_same_verdict(name: str) -> None:
    case = CASES[name]
    expected = set() if case.code is None else {case.code} if isinstance(case.code, str) else set(case.code)
    # A host with unsafe defaults cannot pass clean(); this one was written without it.
    host = make_docker_host(case.host)
    assert create_job_verdict(host, case.job) == expected
    assert form_verdict(host, case.job) == expected
    assert worker_verdict(case) == expected
    guard = guard_verdict(case)
    if case.guard:
        assert bool(guard) == (case.code is not None), guard
    else:
        assert guard == set()


def test_a_host_with_unsafe_defaults_cannot_be_saved() -> None:
    for name, case in CASES.items():
        if case.host and case.code is not None and "allowed_registries" not in case.host:
            host = ExecutorHost(
                name="unsafe", executor_type="docker", connection_string="unix:///var/run/docker.sock"
            )
            host.executor_config = case.host
            with pytest.raises(ValidationError) as raised:
                host.full_clean()
            assert [e.code for e in raised.value.error_dict["executor_config"]] == [case.code], name


# The Docker address: ExecutorHost.clean(), the admin host form, the worker's host load and the ----
# plugin's connection all read it with docker_executor.address, so they refuse the same hosts.

ADDRESSES = {
    "the local default": ("", {}, None),
    "a unix socket": ("unix:///var/run/docker.sock", {}, None),
    "ssh": ("ssh://deploy@build.example.com", {}, "connection_string_invalid"),
    "a relative socket": ("unix://var/run/docker.sock", {}, "connection_string_invalid"),
    "a port above 65535": ("tcp://10.0.0.5:99999", {"allow_insecure_tcp": True}, "connection_string_invalid"),
    "port 0": ("tcp://10.0.0.5:0", {"allow_insecure_tcp": True}, "connection_string_invalid"),
    "no port": ("tcp://10.0.0.5", {"allow_insecure_tcp": True}, "connection_string_invalid"),
    "no host": ("tcp://:2375", {"allow_insecure_tcp": True}, "connection_string_invalid"),
    "a path": ("tcp://10.0.0.5:2375/v1", {"allow_insecure_tcp": True}, "connection_string_invalid"),
    "tcp without tls": ("tcp://10.0.0.5:2375", {}, "tcp_without_tls"),
    "tcp on a private network": ("tcp://10.0.0.5:2375", {"allow_insecure_tcp": True}, None),
}


def docker_host_row(connection: str, config: dict[str, Any]) -> ExecutorHost:
    return ExecutorHost(
        name=f"addr-{next(_numbers)}",
        executor_type="docker",
        host_type="tcp" if connection.startswith("tcp") else "unix",
        connection_string=connection,
        executor_config=config,
    )


def clean_codes(host: ExecutorHost) -> set[str]:
    try:
        host.full_clean()
    except ValidationError as exc:
        return {e.code for errors in exc.error_dict.values() for e in errors if e.code}
    return set()


def host_form_codes(host: ExecutorHost) -> set[str]:
    template = ExecutorHostForm(instance=host)
    data = {name: template[name].value() for name in template.fields}
    data = {k: v for k, v in data.items() if v is not None and v is not False}
    data["executor_config"] = json.dumps(host.executor_config)
    form = ExecutorHostForm(data=data)
    if form.is_valid():
        return set()
    return {e.code for errors in form.errors.as_data().values() for e in errors if e.code}


def worker_refuses(host: ExecutorHost) -> bool:
    # Saved behind clean()'s back, then loaded as a worker loads its hosts.
    host.save()
    loaded = ExecutorHost.objects.get(pk=host.pk)
    return bool(unusable_reason(loaded))


def connection_refuses(host: ExecutorHost) -> bool:
    try:
        connection_key(host.to_spec(), "calls", 30)
    except HostMisconfigured:
        return True
    return False


@pytest.mark.parametrize("name", sorted(ADDRESSES))
def test_every_door_gives_a_docker_address_the_same_verdict(name: str) -> None:
    connection, config, code = ADDRESSES[name]
    expected = set() if code is None else {code}
    assert clean_codes(docker_host_row(connection, config)) == expected
    assert host_form_codes(docker_host_row(connection, config)) == expected
    assert worker_refuses(docker_host_row(connection, config)) == (code is not None)
    assert connection_refuses(docker_host_row(connection, config)) == (code is not None)


# Claimable: claimable() and the worker's claim select the same jobs. ------------------------------


def test_claimable_and_the_claim_select_the_same_jobs() -> None:
    host = ExecutorHost.objects.create(name="claims", executor_type="mock", max_concurrent_jobs=50)
    past, future = timezone.now() - timedelta(seconds=5), timezone.now() + timedelta(hours=1)
    rows = {
        "pending": {},
        "scheduled earlier": {"scheduled_for": past},
        "scheduled later": {"scheduled_for": future},
        "retry due": {"status": JobStatus.RETRYING, "next_attempt_at": past},
        "backing off": {"status": JobStatus.RETRYING, "next_attempt_at": future},
        "being cancelled": {"cancel_requested_at": past},
        "running": {"status": JobStatus.RUNNING},
        "done": {"status": JobStatus.COMPLETED},
    }
    names = {}
    for label, changes in rows.items():
        job = ContainerJob.objects.create_job("busybox", "true", name=label, docker_host=host)
        ContainerJob.objects.filter(pk=job.pk).update(**changes)
        names[job.pk] = label
    now = timezone.now()
    listed = {names[pk] for pk in ContainerJob.objects.claimable(now).values_list("pk", flat=True)}
    read = {
        names[job.pk] for job in claim_sql.candidates(now, host_pks=[host.pk], floating_types=[], limit=100)
    }
    assert listed == read == {"pending", "scheduled earlier", "retry due"}
    ContainerJob.objects.filter(name__in=listed).update(status=JobStatus.COMPLETED)
    assert not ContainerJob.objects.claimable(now).exists()
    assert claim_sql.any_due(now) is False


# "137 means OOM": the executor's verdict is the worker's. -----------------------------------------


@pytest.mark.parametrize(
    ("flagged", "exit_code", "stopped_by_us", "event"),
    [
        (False, 137, False, False),  # SIGKILL nobody here sent: Docker reads it as the OOM killer
        (False, 137, True, False),  # the executor's own stop
        (True, 0, False, False),
        (False, 0, False, True),  # a child killed for memory while PID 1 survived
        (False, 1, False, False),
    ],
)
def test_the_worker_reads_an_oom_as_the_docker_plugin_does(
    flagged: bool, exit_code: int, stopped_by_us: bool, event: bool
) -> None:
    verdict = oom_killed(
        flagged=flagged, exit_code=exit_code, stopped_by_us=stopped_by_us, event_seen=lambda: event
    )
    status = ExecutionStatus(ExecutionState.EXITED, exit_code=exit_code, oom_killed=verdict)
    assert (termination_reason(status, "") == TerminationReason.OOM_KILLED) == verdict


def test_an_exit_137_the_executor_does_not_call_an_oom_is_not_one() -> None:
    # The mock (as Cloud Run for a timeout) exits 137 without an OOM: the worker takes its word.
    status = ExecutionStatus(ExecutionState.EXITED, exit_code=137, oom_killed=False)
    assert termination_reason(status, "") == TerminationReason.NON_ZERO_EXIT


# Managed labels: the labels the app puts on a job are the ones the Docker plugin recognises. ------


def test_the_plugin_recognises_the_labels_the_app_sets() -> None:
    host = make_docker_host({})
    job = ContainerJob.objects.create_job(IMAGE, "true", docker_host=host)
    spec, host_spec = job.to_spec(), host.to_spec()
    assert spec.labels[labels.MANAGED_LABEL] == "true"
    assert spec.labels[labels.ATTEMPT_LABEL] == str(job.attempt)
    container = container_labels(host_spec, spec)
    assert job_id_of(container, host_spec.owner) == str(job.id)
    assert owner_filter(host_spec) == [
        f"{labels.MANAGED_LABEL}=true",
        f"{labels.OWNER_LABEL}={host_spec.owner}",
    ]


# DEFAULT_USER is judged by the one user rule: refused as a setting iff refused on a job. ----------


@pytest.mark.parametrize(
    "user", ["1001", "00001001", "65534", "1001:1001", "0", "00", "0000:0000", "1001:0", "nobody", "1000"]
)
def test_default_user_and_a_jobs_user_get_the_same_verdict(user: str, settings) -> None:
    host = make_docker_host({})
    refused_on_a_job = bool(create_job_verdict(host, {"user": user}))
    settings.CONTAINER_MANAGER = {"DEFAULT_USER": user}
    try:
        app_settings()
    except ImproperlyConfigured:
        refused_as_default = True
    else:
        refused_as_default = False
    assert refused_as_default == refused_on_a_job


# The mock plugin's typed config: refused on save and at the worker's host load alike. -------------


@pytest.mark.parametrize(("config", "refused"), [({"unhealthy": "disk full"}, False), ({"timout": 5}, True)])
def test_a_mock_host_config_gets_one_verdict(config: dict[str, Any], refused: bool) -> None:
    host = ExecutorHost(name=f"mock-{next(_numbers)}", executor_type="mock", executor_config=config)
    assert bool(clean_codes(host)) == refused
    assert worker_refuses(host) == refused
