"""Build the exact container-create request body the engine receives, in one place."""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import docker.types

from container_manager_core.errors import LaunchFailed
from container_manager_core.identity import InvalidUser, parse_user
from container_manager_core.types import HostSpec, JobSpec, NetworkAttachment, TmpfsMount
from docker_executor.config import docker_config
from docker_executor.naming import container_labels, container_name
from docker_executor.rules import InvalidSize, parse_size

# tmpfs is the only writable place under the read-only root: no binaries, no setuid, no devices.
TMPFS_FLAGS = "noexec,nosuid,nodev"
NO_NEW_PRIVILEGES = "no-new-privileges=true"  # the ":" form is deprecated and logs a warning


@attrs.frozen
class CreatePayload:
    """The create request: container name, engine JSON body, and networks to join before start.

    ``config`` is what is POSTed to ``/containers/create`` and what the safety re-check reads; treat it
    as read-only.
    """

    name: str
    config: dict[str, Any]
    extra_networks: tuple[NetworkAttachment, ...] = ()


def network_mode(host: HostSpec, job: JobSpec) -> str:
    """Return the network the container is created on (the first of ``job.networks`` if any)."""
    if job.networks:
        first = job.networks[0].name
        if job.network_mode is not None and job.network_mode != first:
            raise LaunchFailed(
                f"Job {job.job_id!r} sets network_mode {job.network_mode!r} and also joins networks "
                f"{[n.name for n in job.networks]!r}; set one or the other."
            )
        return first
    if job.network_mode is None:
        return docker_config(host).default_network
    return job.network_mode


def tmpfs_options(mount: TmpfsMount) -> str:
    """Return the engine's option string for a size-capped tmpfs."""
    return f"size={mount.size_bytes},mode={mount.mode:o},{TMPFS_FLAGS}"


def log_config(host: HostSpec) -> docker.types.LogConfig:
    """Return a json-file log driver bounded by size and file count, so a chatty job cannot fill the disk."""
    config = docker_config(host)
    max_size, max_file = config.log_max_size, str(config.log_max_file)
    # In bytes, which every engine version reads alike ("10m" is 10^7 bytes to some, 2^20 x 10 to others).
    with contextlib.suppress(InvalidSize):
        max_size = str(parse_size(max_size))
    return docker.types.LogConfig(type="json-file", config={"max-size": max_size, "max-file": max_file})


def host_config(host: HostSpec, job: JobSpec, api_version: str) -> docker.types.HostConfig:
    """Translate the job's isolation and limits into the engine's HostConfig.

    The translation is faithful: a dangerous spec value becomes a dangerous payload value, which the
    re-check then refuses, so no request is ever silently changed into something the caller did not ask.
    What the portable spec has no field for is fixed here at its safe value: no privileges, every
    capability dropped, no-new-privileges on, the engine's own namespaces, no devices, no bind mounts.
    """
    memory = job.memory_limit_bytes
    return docker.types.HostConfig(
        version=api_version,
        read_only=job.read_only_root,
        tmpfs={m.path: tmpfs_options(m) for m in job.tmpfs},
        cap_drop=["ALL"],
        security_opt=[NO_NEW_PRIVILEGES],
        pids_limit=job.pids_limit,
        mem_limit=memory,
        # Equal to the memory limit: swap would let a job exceed its limit and thrash the host.
        memswap_limit=memory,
        nano_cpus=None if job.cpu_limit is None else round(job.cpu_limit * 1e9),
        network_mode=network_mode(host, job),
        # Explicit: an engine on cgroup v1 would otherwise give the container the host's cgroup namespace.
        cgroupns="private",
        log_config=log_config(host),
        restart_policy={"Name": "no"},
        # docker-init as PID 1 forwards SIGTERM to the job (a shell as PID 1 ignores it) and reaps zombies.
        init=docker_config(host).use_init,
    )


def engine_user(user: str | None) -> str:
    """Return the user as the engine should get it: ``UID:GID``, the group explicit even when the job gave none.

    Without a group the engine would take the image's group for that UID, GID 0 unless the image
    says otherwise. Text that is not a numeric user is passed on as it is, for the guard to refuse.
    """
    try:
        return parse_user(user).engine_user()
    except InvalidUser:
        return user or ""


def build_create_payload(host: HostSpec, job: JobSpec, api_version: str) -> CreatePayload:
    """Return the complete create request for ``job`` on ``host``."""
    config = docker.types.ContainerConfig(
        api_version,
        job.image,
        job.command.argv if job.command is not None else [],
        user=engine_user(job.user),
        environment=dict(job.env),
        working_dir=job.working_dir,
        labels=container_labels(host, job),
        host_config=host_config(host, job, api_version),
        stop_timeout=job.stop_grace_seconds,
    )
    if job.command is None:
        config["Cmd"] = None  # the image's own CMD
    if job.networks:
        first = job.networks[0]
        endpoint = docker.types.EndpointConfig(api_version, aliases=list(first.aliases) or None)
        config["NetworkingConfig"] = {"EndpointsConfig": {first.name: endpoint}}
    return CreatePayload(container_name(job.job_id), dict(config), tuple(job.networks[1:]))
