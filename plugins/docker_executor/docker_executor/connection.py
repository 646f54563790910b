"""Open and cache one docker-py client per host and connection settings."""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import attrs
import docker
import docker.constants
import docker.tls
import docker.transport
import docker.transport.unixconn
import docker.utils

from container_manager_core.errors import ExecutorUnavailable
from container_manager_core.types import HostSpec, TlsSettings
from docker_executor.config import docker_address, docker_config

# Connections kept open per engine: a runner thread per running job, and removals.
POOL_SIZE = 32
# The scheme docker-py gives every request to an engine on a unix socket.
ENGINE_URL_PREFIX = "http+docker://"


@attrs.frozen
class ConnectionKey:
    """Everything that makes two connections different; a changed setting means a new client."""

    host_name: str
    purpose: str  # "calls" or "health": health checks get their own short-timeout client.
    base_url: str
    tls: TlsSettings | None
    timeout: int
    api_version: str | None


def whole_seconds(seconds: float) -> int:
    """Return a timeout as docker-py wants it: whole seconds, at least one."""
    return max(1, math.ceil(seconds))


def connection_key(host: HostSpec, purpose: str, seconds: float) -> ConnectionKey:
    """Return the cache key for ``host`` used for ``purpose`` with ``seconds`` per call.

    Raises HostMisconfigured for a host whose config or address this plugin cannot use.
    """
    # A pinned None asks the engine, as "auto" does (docker-py's own "auto" would ask before trust_env is off).
    version = docker_config(host).api_version
    address = docker_address(host)
    return ConnectionKey(host.name, purpose, address.base_url, host.tls, whole_seconds(seconds), version)


def tls_config(tls: TlsSettings) -> docker.tls.TLSConfig:
    """Translate the host's TLS settings into docker-py's."""
    client_cert = None
    if tls.client_cert is not None and tls.client_key is not None:
        client_cert = (tls.client_cert, tls.client_key)
    return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=tls.ca_cert, verify=tls.verify)


def open_client(key: ConnectionKey) -> docker.DockerClient:
    """Connect to the engine with an explicit API version and environment-proof TLS."""
    socket_path = key.base_url.removeprefix("unix://")
    if socket_path != key.base_url and not os.path.exists(socket_path):
        # Checked here because docker-py leaks the socket of a failed unix connect (docker-py #3356),
        # and "no socket" is the clearer message for an engine that is not running.
        raise ExecutorUnavailable(f"Docker host {key.host_name!r} has no engine socket at {socket_path!r}.")
    tls: docker.tls.TLSConfig | bool = False if key.tls is None else tls_config(key.tls)
    version = key.api_version or _negotiate_version(key, tls)
    # An explicit version means docker-py makes no request in the constructor, so trust_env is off
    # before the first byte is sent (REQUESTS_CA_BUNDLE would otherwise replace our CA: docker-py #2433).
    client = docker.DockerClient(
        base_url=key.base_url, version=version, timeout=key.timeout, tls=tls, max_pool_size=POOL_SIZE
    )
    client.api.trust_env = False
    if socket_path != key.base_url:
        # The client is a requests.Session: mounting our adapter for the engine's scheme replaces
        # docker-py's (closed here: it never sent a byte), and the session closes whatever is
        # mounted when the client is closed.
        replaced = client.api.get_adapter(ENGINE_URL_PREFIX)
        pooled = SocketPoolAdapter("http+unix://" + socket_path, key.timeout, max_pool_size=POOL_SIZE)
        client.api.mount(ENGINE_URL_PREFIX, pooled)
        replaced.close()
    return client


class SocketPoolAdapter(docker.transport.UnixHTTPAdapter):
    """docker-py's unix-socket adapter with one connection pool per socket, not one per URL.

    docker-py keys its pools by the whole request URL, so each container id in a path gets a pool
    and a fresh connection of its own (and its 25-entry LRU closes them again): a connect and a
    close on the engine for nearly every call. Keyed by the socket, connections are reused.
    """

    def get_connection(
        self, url: str | bytes, proxies: Any = None
    ) -> docker.transport.unixconn.UnixHTTPConnectionPool:
        return super().get_connection(self.socket_path, proxies)


def _negotiate_version(key: ConnectionKey, tls: docker.tls.TLSConfig | bool) -> str:
    # docker-py's version="auto" asks the engine inside the constructor, before trust_env can be
    # turned off; ask with a throwaway client that is environment-proof from the start instead.
    probe = docker.APIClient(
        base_url=key.base_url,
        version=docker.constants.MINIMUM_DOCKER_API_VERSION,
        timeout=key.timeout,
        tls=tls,
    )
    probe.trust_env = False
    try:
        server = str(probe.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()
    newest = docker.constants.DEFAULT_DOCKER_API_VERSION
    return server if docker.utils.version_lt(server, newest) else newest


class ClientCache:
    """Thread-safe cache of connected clients, one per :class:`ConnectionKey`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[ConnectionKey, docker.DockerClient] = {}

    def get(self, key: ConnectionKey) -> docker.DockerClient:
        """Return the cached client for ``key``, connecting on first use."""
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        # Connect outside the lock: an unreachable host must not stall calls to every other host.
        fresh = open_client(key)
        stale: list[docker.DockerClient] = []
        with self._lock:
            winner = self._clients.setdefault(key, fresh)
            if winner is fresh:
                # Settings of this host changed (new cert, new timeout): drop the old connections.
                for other in list(self._clients):
                    if other.host_name == key.host_name and other.purpose == key.purpose and other != key:
                        stale.append(self._clients.pop(other))
        for client in stale if winner is fresh else [fresh]:
            client.close()
        return winner

    def close(self) -> None:
        """Close every cached client."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()
