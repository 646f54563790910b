"""The Docker engine address: the one parser of a host's connection string and transport security.

``validate_host`` calls it when a host is saved and when a worker loads its hosts, and the
connection calls it before every client it opens, so a host is never accepted on save and then
refused on every call. Accepted: ``unix:///absolute/socket`` (empty means the local default socket)
and ``tcp://HOST:PORT``, with TLS unless ``allow_insecure_tcp``, and TLS verification on unless
``allow_insecure_tls``. Nothing else: ``ssh://`` and other transports are not tested here.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import SplitResult, urlsplit

import attrs

from container_manager_core.types import HostSpec, Violation

DEFAULT_BASE_URL: Final = "unix:///var/run/docker.sock"
_FIELD: Final = "connection_string"


@attrs.frozen
class DockerAddress:
    """A parsed engine address: ``base_url`` as docker-py takes it, and whether it is a local socket."""

    base_url: str
    local: bool


@attrs.frozen
class AddressVerdict:
    """What :func:`read_address` found: the address when usable, else ``None``, and every violation."""

    address: DockerAddress | None
    violations: tuple[Violation, ...]


def read_address(host: HostSpec, *, allow_insecure_tcp: bool, allow_insecure_tls: bool) -> AddressVerdict:
    """Parse ``host``'s connection string and TLS settings; the flags are the host config's opt-ins."""
    text = host.connection_string or DEFAULT_BASE_URL
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in ("unix", "tcp"):
        return _invalid(host, "it must be unix:///path/to/socket or tcp://HOST:PORT")
    if scheme == "unix":
        if not rest.startswith("/") or "\x00" in rest:
            return _invalid(host, "a unix:// address needs an absolute socket path")
        violations = () if host.tls is None else (_tls_on_socket(host),)
        return AddressVerdict(None if violations else DockerAddress(f"unix://{rest}", True), violations)
    parts = _host_port(f"tcp://{rest}")
    if parts is None:
        return _invalid(host, "a tcp:// address must be exactly tcp://HOST:PORT")
    found: list[Violation] = []
    if host.tls is None and not allow_insecure_tcp:
        found.append(
            Violation(
                "tcp_without_tls",
                f"Docker host {host.name!r} connects to {_shown(host.connection_string)!r} without TLS: the "
                "daemon would be open to anyone on the network, who could run anything as root on it. "
                "Configure TLS, or set allow_insecure_tcp in the host config if the network is truly private.",
                _FIELD,
            )
        )
    if host.tls is not None and not host.tls.verify and not allow_insecure_tls:
        found.append(
            Violation(
                "tls_verify_disabled",
                f"Docker host {host.name!r} turns off TLS verification, so anyone on the path could "
                "impersonate the daemon. Provide a CA certificate, or set allow_insecure_tls in the host config.",
                "tls",
            )
        )
    address = DockerAddress(parts.geturl(), False) if not found else None
    return AddressVerdict(address, tuple(found))


def _host_port(text: str) -> SplitResult | None:
    """Return ``text`` split if it is exactly ``tcp://HOST:PORT`` with a port from 1 to 65535."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a port that is not a number, or above 65535
        return None
    extra = parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc
    if not parts.hostname or port is None or port < 1 or extra:
        return None
    return parts._replace(path="")


def _tls_on_socket(host: HostSpec) -> Violation:
    return Violation(
        "tls_without_tcp",
        f"Docker host {host.name!r} sets TLS on a unix socket, which does not use it; TLS applies to "
        "tcp://HOST:PORT addresses only.",
        "tls",
    )


def _invalid(host: HostSpec, reason: str) -> AddressVerdict:
    message = f"Docker host {host.name!r} has connection string {_shown(host.connection_string)!r}; {reason}."
    return AddressVerdict(None, (Violation("connection_string_invalid", message, _FIELD),))


def _shown(text: str) -> str:
    """Return the connection string for a message, without the password a user part might carry."""
    user, at, place = text.rpartition("@")
    if not at:
        return text
    scheme, separator, _credentials = user.partition("://")
    return f"{scheme}://***@{place}" if separator else f"***@{place}"
