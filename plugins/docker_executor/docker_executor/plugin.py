"""The Docker executor: hardened containers on Docker Engines through docker-py."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs
import docker
import docker.errors

from container_manager_core.capabilities import Capabilities, unenforceable
from container_manager_core.errors import (
    ExecutionNotFound,
    ExecutorUnavailable,
    ImagePullFailed,
    LaunchFailed,
)
from container_manager_core.executor import poll_until
from container_manager_core.hookspecs import hookimpl
from container_manager_core.labels import JOB_ID_LABEL, OWNER_LABEL
from container_manager_core.logstream import LogPiece
from container_manager_core.plugins import ExecutorPlugin
from container_manager_core.types import (
    Execution,
    ExecutionLogs,
    ExecutionState,
    ExecutionStatus,
    HealthStatus,
    HostSpec,
    JobSpec,
    ResourceUsage,
    Violation,
)
from docker_executor.attach import Attachments
from docker_executor.config import docker_address, docker_config, host_violations
from docker_executor.connection import ClientCache, connection_key, whole_seconds
from docker_executor.engine_errors import (
    engine_call,
    explanation,
    status_code,
    version_refusal,
    version_refused,
)
from docker_executor.events import actions_seen
from docker_executor.guard import check_create_payload
from docker_executor.health import UserNamespaceGate, check_health
from docker_executor.image_pull import ensure_image
from docker_executor.logs import follow_logs, read_logs
from docker_executor.naming import job_id_of, owner_filter
from docker_executor.networks import join_networks, require_networks
from docker_executor.oom import oom_killed
from docker_executor.payload import CreatePayload, build_create_payload
from docker_executor.records import Recent
from docker_executor.state import execution_state, never_started, parse_engine_time
from docker_executor.usage import SampleCache, cgroup_sample, stats_sample

logger = logging.getLogger("docker_executor")

# A container left "created" for this long lost its launcher (crash between create and start):
# the next launch of the job starts it. A younger one is a launch in progress and is left alone.
STALE_CREATE_SECONDS = 30.0
# An exit this old has had its OOM notification and any kill logged by the engine; its verdicts are final.
OOM_SETTLE_SECONDS = 2.0
# The engine events that decide how an exited container's run ended (see _verdict).
_VERDICT_EVENTS = ("oom", "kill")
# How long an image seen on a host is trusted to still be there (a removal is caught at create).
IMAGE_PRESENCE_SECONDS = 60.0
# Longest wait for the exit once a container's attached output ended (the two are near-simultaneous).
ATTACH_EXIT_SECONDS = 5.0
_LIVE_STATES = frozenset({"running", "restarting", "paused"})


class DockerExecutor(ExecutorPlugin):
    """Run jobs as hardened containers on Docker Engines reached over a unix socket or TLS."""

    executor_type = "docker"
    # The engine request sets every protection (payload.py) and the guard re-checks each one.
    capabilities: ClassVar[Capabilities] = Capabilities.everything()

    def __init__(self) -> None:
        self._clients = ClientCache()
        self._stops: Recent[float] = Recent()  # container id -> when this process stopped it
        self._verdicts: Recent[_Verdict] = Recent()  # container id -> settled verdict of its exit
        self._samples = SampleCache()
        # An exited container's engine state never changes again, so its inspect result is kept
        # (until removal) rather than asked for again by wait_for_exit, check_status and get_usage.
        self._exited: Recent[Mapping[str, Any]] = Recent()
        # Images seen on a host recently: the per-launch inspect is skipped while the entry is fresh.
        self._images: Recent[float] = Recent()
        self._user_namespaces = UserNamespaceGate()
        self._attachments = Attachments()

    # Policy --------------------------------------------------------------------------------------

    @hookimpl
    def validate_host(self, host: HostSpec) -> list[Violation]:
        """Return the problems with a Docker host's configuration: its keys and values, and the defaults
        that would weaken every job's container, its address and transport (see :mod:`docker_executor.config`)."""
        return host_violations(host) if self._mine(host) else []

    # Connections ---------------------------------------------------------------------------------

    def _get_client(self, host: HostSpec) -> docker.DockerClient:
        """Return the cached docker-py client for ``host``, connecting on first use."""
        key = connection_key(host, "calls", docker_config(host).timeout)
        with engine_call(host, "connect"):
            return self._clients.get(key)

    def _health_client(self, host: HostSpec) -> docker.DockerClient:
        return self._clients.get(connection_key(host, "health", docker_config(host).health_timeout))

    def _call_timeout(self, host: HostSpec) -> float:
        return float(whole_seconds(docker_config(host).timeout))

    @hookimpl
    def validate_job(self, host: HostSpec | None, job: JobSpec) -> list[Violation]:
        """Refuse a job whose host's defaults are unsafe, even if the host row was changed behind clean(),
        or that needs a protection this executor cannot enforce."""
        if host is None or not self._mine(host):
            return []
        return [*self.validate_host(host), *unenforceable(job, self.capabilities, "Docker")]

    # Launch --------------------------------------------------------------------------------------

    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution:
        """Create and start the job's container, or adopt it if this job was already launched."""
        api = self._get_client(host).api
        try:
            payload = build_create_payload(host, job, api.api_version)
        except docker.errors.InvalidVersion as exc:  # docker-py refuses a setting in the pinned version
            raise version_refusal(host, f"launch job {job.job_id!r}", str(exc)) from exc
        with engine_call(host, f"launch job {job.job_id!r}"):
            # Before anything is created: an engine that stopped remapping since the health check.
            self._user_namespaces.require(host, api.info)
            require_networks(api, host, payload.config["HostConfig"]["NetworkMode"], payload.extra_networks)
            self._ensure_image(api, host, job.image)
            for _attempt in range(2):
                try:
                    execution = self._create_and_start(api, host, job, payload)
                except ImagePullFailed:
                    image_key = f"{host.name}\0{job.image}"
                    if image_key not in self._images:
                        raise
                    # Removed since it was last seen: check again, pulling if the host allows it.
                    self._images.forget(image_key)
                    self._ensure_image(api, host, job.image)
                    continue
                if execution is not None:
                    return execution
        raise LaunchFailed(
            f"Host {host.name!r} kept reporting container {payload.name!r} both present and absent; "
            f"job {job.job_id!r} was not launched."
        )

    def _ensure_image(self, api: docker.APIClient, host: HostSpec, image: str) -> None:
        key = f"{host.name}\0{image}"
        seen = self._images.get(key)
        if seen is not None and time.monotonic() - seen < IMAGE_PRESENCE_SECONDS:
            return
        ensure_image(api, host, image)
        self._images.put(key, time.monotonic())

    def _inspect(self, api: docker.APIClient, execution_id: str) -> Mapping[str, Any]:
        """Return the container's inspect result, from memory once it has exited."""
        known = self._exited.get(execution_id)
        if known is not None:
            return known
        info: Mapping[str, Any] = api.inspect_container(execution_id)
        if execution_state(info["State"]["Status"]) is ExecutionState.EXITED:
            self._exited.put(execution_id, info)
        return info

    def _create_and_start(
        self, api: docker.APIClient, host: HostSpec, job: JobSpec, payload: CreatePayload
    ) -> Execution | None:
        # The one and only place a container is created: the body sent is the body checked.
        check_create_payload(payload.config, host, payload.extra_networks)
        try:
            created = api.create_container_from_config(payload.config, name=payload.name)  # type: ignore[no-untyped-call]  # untyped in docker-stubs
        except docker.errors.ImageNotFound as exc:
            raise ImagePullFailed(job.image, explanation(exc)) from exc
        except docker.errors.APIError as exc:
            if status_code(exc) == 409:  # the name is taken: this job was launched before
                return self._adopt(api, host, job, payload.name)
            if version_refused(exc):
                raise version_refusal(host, f"launch job {job.job_id!r}", explanation(exc)) from exc
            raise LaunchFailed(
                f"Host {host.name!r} refused to create the container for job {job.job_id!r}: {explanation(exc)}"
            ) from exc
        container_id = str(created["Id"])
        try:
            join_networks(api, host, container_id, payload.extra_networks)
            # Before the start, so the follower reads every byte as it is written (attach.py).
            self._attachments.attach(api, container_id, docker_config(host).log_cap_bytes)
            api.start(container_id)
        except LaunchFailed:
            self._discard(api, container_id)
            raise
        except docker.errors.APIError as exc:
            self._discard(api, container_id)
            raise LaunchFailed(
                f"Host {host.name!r} refused to start the container for job {job.job_id!r}: {explanation(exc)}"
            ) from exc
        return Execution(container_id)

    def _adopt(self, api: docker.APIClient, host: HostSpec, job: JobSpec, name: str) -> Execution | None:
        """Return the existing container of ``job`` as adopted; None if it vanished meanwhile."""
        try:
            info = api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        labels = info["Config"].get("Labels") or {}
        owner = job_id_of(labels, host.owner)
        if owner != job.job_id:
            raise LaunchFailed(
                f"Host {host.name!r} already has a container named {name!r} labelled for job "
                f"{labels.get(JOB_ID_LABEL)!r} of owner {labels.get(OWNER_LABEL)!r}, not for job "
                f"{job.job_id!r} of owner {host.owner!r}; remove or rename it."
            )
        created = parse_engine_time(info.get("Created"))
        stale = created is not None and (datetime.now(UTC) - created).total_seconds() > STALE_CREATE_SECONDS
        # Never start a container that ran (or tried to): an exited job is returned as it is.
        if never_started(info["State"]) and stale:
            logger.warning(
                "Starting container %r of job %r, created but never started.", info["Id"], job.job_id
            )
            api.start(info["Id"])
        return Execution(str(info["Id"]), adopted=True)

    def _discard(self, api: docker.APIClient, container_id: str) -> None:
        """Remove a container whose launch failed, so no half-launched container is left behind."""
        self._attachments.close(container_id)
        try:
            api.remove_container(container_id, force=True, v=True)
        except docker.errors.DockerException as exc:
            logger.warning("Could not remove container %r after a failed launch: %s", container_id, exc)

    # Status --------------------------------------------------------------------------------------

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        """Return the container's state, exit code, OOM verdict, timestamps and whether it was interrupted.

        Read from the engine's state (inspect), never from events alone, so an exit is known however
        many events were missed; only the verdicts ask the event log (see :meth:`_verdict`).
        """
        api = self._get_client(host).api
        with engine_call(host, f"inspect execution {execution_id!r}"):
            try:
                info = self._inspect(api, execution_id)
            except docker.errors.NotFound:
                return ExecutionStatus(ExecutionState.NOT_FOUND)
            state: Mapping[str, Any] = info["State"]
            phase = _phase(state)
            exited = phase is ExecutionState.EXITED
            verdict = (
                self._verdict(host, api, info) if exited else _Verdict(oom_killed=False, interrupted=False)
            )
            return ExecutionStatus(
                phase,
                exit_code=int(state["ExitCode"]) if exited else None,
                oom_killed=verdict.oom_killed,
                started_at=parse_engine_time(state.get("StartedAt")),
                finished_at=parse_engine_time(state.get("FinishedAt")) if exited else None,
                error=state.get("Error") or None,
                interrupted=verdict.interrupted,
            )

    def _verdict(self, host: HostSpec, api: docker.APIClient, info: Mapping[str, Any]) -> _Verdict:
        """Say whether an exited container was OOM-killed, and whether someone else stopped it.

        "Someone else" is a ``kill`` this process did not send: the engine's shutdown stopping its
        containers, or an operator's docker stop. Both verdicts share one query of the engine's
        event log, made only when cheaper evidence does not decide; the answer is kept once the exit
        is old enough for the engine to have logged everything about it.
        """
        container_id = str(info["Id"])
        known = self._verdicts.get(container_id)
        if known is not None:
            return known
        state: Mapping[str, Any] = info["State"]
        created = parse_engine_time(info.get("Created"))
        stopped_by_us = container_id in self._stops
        seen: list[frozenset[str]] = []

        def events() -> frozenset[str]:
            if not seen:
                since = 0.0 if created is None else created.timestamp() - 1.0
                seen.append(
                    actions_seen(
                        api, container_id, _VERDICT_EVENTS, since=since, timeout=self._call_timeout(host)
                    )
                )
            return seen[0]

        verdict = _Verdict(
            oom_killed=oom_killed(
                flagged=bool(state.get("OOMKilled")),
                exit_code=state.get("ExitCode"),
                stopped_by_us=stopped_by_us,
                event_seen=lambda: "oom" in events(),
            ),
            interrupted=not stopped_by_us and "kill" in events(),
        )
        finished = parse_engine_time(state.get("FinishedAt"))
        if finished is not None and (datetime.now(UTC) - finished).total_seconds() > OOM_SETTLE_SECONDS:
            self._verdicts.put(container_id, verdict)
        return verdict

    def wait_for_exit(self, host: HostSpec, execution_id: str, timeout: float) -> bool:
        """Poll the container's state until it has exited or is gone; the verdicts wait for check_status."""
        api = self._get_client(host).api
        with engine_call(host, f"wait for execution {execution_id!r} to exit"):
            return poll_until(lambda: self._ended(api, execution_id), timeout, self.exit_poll_interval)

    def _ended(self, api: docker.APIClient, execution_id: str) -> bool:
        try:
            return _phase(self._inspect(api, execution_id)["State"]) is ExecutionState.EXITED
        except docker.errors.NotFound:
            return True

    # Output and usage ----------------------------------------------------------------------------

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs:
        """Return stdout and stderr apart, each capped at the host's ``log_cap_bytes`` (head and tail)."""
        api = self._get_client(host).api
        limit = docker_config(host).log_cap_bytes
        with engine_call(host, f"read the logs of execution {execution_id!r}"):
            try:
                return read_logs(
                    api, execution_id, timestamps=timestamps, limit=limit, timeout=self._call_timeout(host)
                )
            except docker.errors.NotFound:
                raise ExecutionNotFound(execution_id) from None

    def follow_logs(self, host: HostSpec, execution_id: str, *, cursor: str = "") -> Iterator[LogPiece]:
        """Yield the container's output as it is written (the job's own bytes), until it has exited.

        From the attachment made before its start when there is one (every byte, exactly), else
        from the engine's logs endpoint, skipping what ``cursor`` counts as read.
        """
        attachment = None if cursor else self._attachments.take(execution_id)
        with engine_call(host, f"follow the output of execution {execution_id!r}"):
            try:
                if attachment is None:
                    api = self._get_client(host).api
                    timeout = self._call_timeout(host)
                    yield from follow_logs(api, execution_id, cursor=cursor, timeout=timeout)
                    return
                try:
                    yield from attachment.output.pieces()
                finally:
                    self._attachments.close(execution_id)
            except docker.errors.NotFound:
                raise ExecutionNotFound(execution_id) from None
        if attachment.output.error is not None:
            raise ExecutorUnavailable(
                f"The output of execution {execution_id!r} broke off: {attachment.output.error!r}."
            )
        # The attachment ends when the process's output closes: at its exit, unless the engine
        # went away while a live-restored container ran on. Then the follower resumes.
        if not self.wait_for_exit(host, execution_id, ATTACH_EXIT_SECONDS):
            raise ExecutorUnavailable(
                f"The output of execution {execution_id!r} ended while it still runs on host {host.name!r}."
            )

    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        """Return peak memory and average CPU so far; None fields when they are not known."""
        api = self._get_client(host).api
        with engine_call(host, f"measure execution {execution_id!r}"):
            try:
                info = self._inspect(api, execution_id)
            except docker.errors.NotFound:
                raise ExecutionNotFound(execution_id) from None
            container_id = str(info["Id"])
            state: Mapping[str, Any] = info["State"]
            started = parse_engine_time(state.get("StartedAt"))
            if state["Status"] in _LIVE_STATES and started is not None:
                sample = None
                pid = state.get("Pid")
                # The cgroup files are only this machine's when the engine is reached over a local socket.
                if docker_address(host).local and isinstance(pid, int) and pid > 0:
                    wall = (datetime.now(UTC) - started).total_seconds()
                    sample = cgroup_sample(pid, container_id, wall)
                if sample is None:
                    try:
                        sample = stats_sample(api, container_id, started)
                    except docker.errors.NotFound:
                        sample = None  # removed meanwhile: report what was known
                if sample is not None:
                    return self._samples.update(container_id, sample).usage()
        known = self._samples.get(container_id)
        return known.usage() if known is not None else ResourceUsage()

    # Stop and clean up ---------------------------------------------------------------------------

    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float) -> bool:
        """Send SIGTERM, then SIGKILL after ``grace_seconds``; False if it was not running."""
        api = self._get_client(host).api
        with engine_call(host, f"stop execution {execution_id!r}"):
            try:
                info = api.inspect_container(execution_id)
                if info["State"]["Status"] not in _LIVE_STATES:
                    return False
                container_id = str(info["Id"])
                # Recorded before the signal: from here on a 137 exit is this stop, not the OOM killer.
                self._stops.put(container_id, time.time())
                api.stop(container_id, timeout=max(0, math.ceil(grace_seconds)))
            except docker.errors.NotFound:
                raise ExecutionNotFound(execution_id) from None
        return True

    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        """Remove the container and its anonymous volumes; False if it was already gone."""
        api = self._get_client(host).api
        with engine_call(host, f"remove execution {execution_id!r}"):
            try:
                api.remove_container(execution_id, force=True, v=True)
                removed = True
            except docker.errors.NotFound:
                removed = False
            except docker.errors.APIError as exc:
                if status_code(exc) != 409:  # 409: another caller's removal is already in progress
                    raise
                removed = False
        self._attachments.close(execution_id)
        self._samples.forget(execution_id)
        self._verdicts.forget(execution_id)
        self._stops.forget(execution_id)
        self._exited.forget(execution_id)
        return removed

    # Host ----------------------------------------------------------------------------------------

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        """Ping, read ``/info`` within ``health_timeout`` and check the engine can enforce limits."""
        return check_health(host, lambda: self._health_client(host))

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        """Return ``(job_id, container id)`` for every container labelled as this manager's."""
        api = self._get_client(host).api
        with engine_call(host, "list executions"):
            containers = api.containers(all=True, filters={"label": owner_filter(host)})
        return [
            (job_id, str(container["Id"]))
            for container in containers
            if (job_id := job_id_of(container.get("Labels"), host.owner)) is not None
        ]


@attrs.frozen
class _Verdict:
    oom_killed: bool
    interrupted: bool


def _phase(state: Mapping[str, Any]) -> ExecutionState:
    phase = execution_state(state["Status"])
    if phase is ExecutionState.PENDING and state.get("Error"):
        return ExecutionState.EXITED  # a start that failed: this container will never run
    return phase


plugin = DockerExecutor()
