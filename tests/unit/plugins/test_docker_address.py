"""The Docker address rule: one parser, the same verdict from validate_host and from the connection."""

from __future__ import annotations

from typing import Any

import pytest
from docker_executor.address import DEFAULT_BASE_URL
from docker_executor.connection import connection_key
from docker_executor.plugin import plugin
from hypothesis import given
from hypothesis import strategies as st

from container_manager_core.errors import HostMisconfigured
from container_manager_core.plugins import PluginManager
from container_manager_core.types import HostSpec, TlsSettings

PM = PluginManager(load_entry_points=False)
PM.register(plugin, name="docker")


def host(connection: str = "", tls: TlsSettings | None = None, **config: Any) -> HostSpec:
    return HostSpec(name="h1", executor_type="docker", connection_string=connection, tls=tls, config=config)


def connection_verdict(spec: HostSpec) -> str | None:
    """Return the base URL the plugin would connect to, or None if it refuses the host."""
    try:
        return connection_key(spec, "calls", 30).base_url
    except HostMisconfigured:
        return None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (host(), []),
        (host(connection="unix:///var/run/docker.sock"), []),
        (host(connection="tcp://10.0.0.5:2376", tls=TlsSettings(ca_cert="/certs/ca.pem")), []),
        (host(connection="tcp://[::1]:2376", tls=TlsSettings(ca_cert="/certs/ca.pem")), []),
        (host(connection="tcp://10.0.0.5:2375"), ["tcp_without_tls"]),
        (host(connection="TCP://10.0.0.5:2375"), ["tcp_without_tls"]),
        (host(connection="tcp://10.0.0.5:2375", allow_insecure_tcp=True), []),
        (host(connection="tcp://10.0.0.5:2375", allow_insecure_tcp="true"), ["docker_config_invalid_value"]),
        (host(connection="tcp://h:2376", tls=TlsSettings(verify=False)), ["tls_verify_disabled"]),
        (host(connection="tcp://h:2376", tls=TlsSettings(verify=False), allow_insecure_tls=True), []),
        (
            host(connection="tcp://h:2375", tls=TlsSettings(verify=False), allow_insecure_tcp=True),
            ["tls_verify_disabled"],
        ),
        (host(connection="unix:///var/run/docker.sock", tls=TlsSettings()), ["tls_without_tcp"]),
        # ssh:// was accepted on save and refused on every call: now refused at both.
        (host(connection="ssh://deploy@build.example.com"), ["connection_string_invalid"]),
        (host(connection="ssh://"), ["connection_string_invalid"]),
        (host(connection="tcp://10.0.0.5"), ["connection_string_invalid"]),
        (host(connection="tcp://10.0.0.5:99999"), ["connection_string_invalid"]),
        (host(connection="tcp://10.0.0.5:0"), ["connection_string_invalid"]),
        (host(connection="tcp://10.0.0.5:port"), ["connection_string_invalid"]),
        (host(connection="tcp://:2376"), ["connection_string_invalid"]),
        (host(connection="tcp://10.0.0.5:2376/path", tls=TlsSettings()), ["connection_string_invalid"]),
        (host(connection="tcp://user@10.0.0.5:2376", tls=TlsSettings()), ["connection_string_invalid"]),
        (host(connection="unix://var/run/docker.sock"), ["connection_string_invalid"]),
        (host(connection="unix://"), ["connection_string_invalid"]),
        (host(connection="http://10.0.0.5:2375"), ["connection_string_invalid"]),
        (host(connection="/var/run/docker.sock"), ["connection_string_invalid"]),
    ],
)
def test_validate_host_and_the_connection_agree(spec: HostSpec, expected: list[str]) -> None:
    violations = PM.validate_host(spec)
    assert [v.code for v in violations] == expected
    assert all(v.message.endswith(".") and repr(spec.name) in v.message for v in violations)
    assert (connection_verdict(spec) is None) == bool(expected)


def test_the_connection_says_why_it_refuses() -> None:
    with pytest.raises(HostMisconfigured, match="must be unix:///path/to/socket or tcp://HOST:PORT"):
        connection_key(host(connection="ssh://build.example.com"), "calls", 30)


def test_an_empty_address_is_the_local_socket_and_schemes_are_read_in_lower_case() -> None:
    assert connection_verdict(host()) == DEFAULT_BASE_URL
    upper = host(connection="TCP://Docker1.internal:2376", tls=TlsSettings())
    assert connection_verdict(upper) == "tcp://Docker1.internal:2376"


def test_tcp_without_tls_explains_the_exposure() -> None:
    (violation,) = PM.validate_host(host(connection="tcp://10.0.0.5:2375"))
    assert "open to anyone on the network" in violation.message
    assert "allow_insecure_tcp" in violation.message
    assert violation.field == "connection_string"


def test_a_password_in_the_address_is_never_shown() -> None:
    (violation,) = PM.validate_host(host(connection="tcp://bot:hunter2@10.0.0.5:2376", tls=TlsSettings()))
    assert "hunter2" not in violation.message
    assert "tcp://***@10.0.0.5:2376" in violation.message


def test_other_executors_hosts_are_not_judged() -> None:
    cloud = HostSpec(
        "c", "cloudrun", connection_string="projects/p/locations/r", tls=TlsSettings(verify=False)
    )
    assert PM.validate_host(cloud) == []


@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda s, r: f"{s}://{r}", st.sampled_from(["unix", "tcp", "ssh", "TCP", "http"]), st.text()
        ),
    ),
    st.booleans(),
    st.booleans(),
)
def test_every_address_gets_one_verdict(text: str, with_tls: bool, insecure_tcp: bool) -> None:
    spec = host(connection=text, tls=TlsSettings() if with_tls else None, allow_insecure_tcp=insecure_tcp)
    accepted = PM.validate_host(spec) == []
    url = connection_verdict(spec)
    assert accepted == (url is not None)
    if url is not None:
        assert url.startswith(("unix:///", "tcp://"))
