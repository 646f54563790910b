"""Check that a job's networks exist, and join the extra ones before the container starts."""

from __future__ import annotations

from collections.abc import Iterable

import docker
import docker.errors

from container_manager_core.errors import LaunchFailed
from container_manager_core.types import HostSpec, NetworkAttachment
from docker_executor.engine_errors import explanation

# Network modes that are not user networks: nothing to look up.
_BUILTIN_MODES = frozenset({"none", "host", "default"})


def missing_network(host: HostSpec, name: str) -> LaunchFailed:
    """Return the error for a network the host does not have, with the command that fixes it."""
    return LaunchFailed(
        f"Network {name!r} does not exist on host {host.name!r}; create it with `docker network create {name}`."
    )


def require_networks(
    api: docker.APIClient, host: HostSpec, mode: str, extra: Iterable[NetworkAttachment]
) -> None:
    """Raise :class:`LaunchFailed` unless every network the container needs exists.

    Checked before create, so a missing network leaves no container behind.
    """
    names = [] if mode in _BUILTIN_MODES or mode.startswith("container:") else [mode]
    names.extend(attachment.name for attachment in extra)
    for name in names:
        try:
            api.inspect_network(name)
        except docker.errors.NotFound:
            raise missing_network(host, name) from None


def join_networks(
    api: docker.APIClient, host: HostSpec, container_id: str, extra: Iterable[NetworkAttachment]
) -> None:
    """Connect the created container to each extra network with its aliases."""
    for attachment in extra:
        try:
            api.connect_container_to_network(
                container_id, attachment.name, aliases=list(attachment.aliases) or None
            )
        except docker.errors.NotFound as exc:
            raise missing_network(host, attachment.name) from exc
        except docker.errors.APIError as exc:
            raise LaunchFailed(
                f"Host {host.name!r} could not connect the container to network {attachment.name!r}: "
                f"{explanation(exc)}"
            ) from exc
