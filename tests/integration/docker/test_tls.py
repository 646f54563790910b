"""TLS to a remote engine, tested for real against a second, TLS-only dockerd on localhost.

The daemon (tests/seconddaemon.py) gets its own data root, exec root, pidfile, containerd namespace
and bridge, listens only on tcp://127.0.0.1:<free port> with --tlsverify, runs no containers, and is
stopped at teardown.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import docker
import docker.errors
import docker.tls
import pytest
import requests.exceptions
from docker_executor.plugin import DockerExecutor

from container_manager_core.types import HostSpec, TlsSettings
from tests.seconddaemon import daemon_root, missing, second_dockerd

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(directory: Path, name: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-sha256", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", f"{name}.pem", cwd=directory,
    )  # fmt: skip


def _make_leaf(directory: Path, name: str, ca: str, extensions: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr", cwd=directory
    )
    Path(directory, f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=directory,
    )  # fmt: skip


@attrs.frozen
class TlsDaemon:
    port: int
    certs: Path

    def path(self, name: str) -> str:
        return str(self.certs / name)

    def host(self, *, ca: str = "ca.pem", cert: str | None = "client", **config: object) -> HostSpec:
        tls = TlsSettings(
            ca_cert=self.path(ca),
            client_cert=None if cert is None else self.path(f"{cert}.pem"),
            client_key=None if cert is None else self.path(f"{cert}.key"),
        )
        return HostSpec(
            "tls-docker", "docker", f"tcp://127.0.0.1:{self.port}", tls, {"timeout": 10, **config}
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(daemon: TlsDaemon) -> bool:
    tls = docker.tls.TLSConfig(
        client_cert=(daemon.path("client.pem"), daemon.path("client.key")),
        ca_cert=daemon.path("ca.pem"),
        verify=True,
    )
    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{daemon.port}", version="1.41", tls=tls, timeout=5)
    client.trust_env = False
    try:
        return bool(client.ping())
    finally:
        client.close()


@pytest.fixture(scope="module")
def tls_daemon() -> Iterator[TlsDaemon]:
    if shutil.which("openssl") is None:
        missing("The TLS tests need openssl on PATH.")
    with daemon_root("cmtls-") as root:
        certs = root / "certs"
        certs.mkdir(mode=0o700)  # private keys: the root is traversable (0711), this is not
        _make_ca(certs, "ca")
        _make_ca(certs, "foreign-ca")
        _make_leaf(
            certs, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        )
        _make_leaf(certs, "client", "ca", "extendedKeyUsage=clientAuth\n")
        _make_leaf(certs, "foreign-client", "foreign-ca", "extendedKeyUsage=clientAuth\n")
        daemon = TlsDaemon(_free_port(), certs)
        options = [
            f"-H=tcp://127.0.0.1:{daemon.port}",
            "--tlsverify",
            f"--tlscacert={daemon.path('ca.pem')}",
            f"--tlscert={daemon.path('server.pem')}",
            f"--tlskey={daemon.path('server.key')}",
        ]
        with second_dockerd(root, "tls", options, lambda: _answers(daemon)):
            yield daemon


def test_the_right_client_certificate_connects(tls_daemon: TlsDaemon) -> None:
    executor = DockerExecutor()
    host = tls_daemon.host()
    health = executor.get_health_status(host)
    assert health.healthy, health.error
    version = executor._get_client(host).version()
    assert health.engine_version == version["Version"]
    assert executor._get_client(host).api.base_url == f"https://127.0.0.1:{tls_daemon.port}"
    assert executor.list_executions(host) == []


def test_plain_http_is_refused(tls_daemon: TlsDaemon) -> None:
    plain = docker.APIClient(base_url=f"tcp://127.0.0.1:{tls_daemon.port}", version="1.41", timeout=5)
    try:
        with pytest.raises(docker.errors.APIError, match="Client sent an HTTP request to an HTTPS server"):
            plain.ping()
    finally:
        plain.close()
    host = HostSpec(
        "plain", "docker", f"tcp://127.0.0.1:{tls_daemon.port}", config={"allow_insecure_tcp": True}
    )
    health = DockerExecutor().get_health_status(host)
    assert not health.healthy
    assert "HTTP request to an HTTPS server" in (health.error or "")


@pytest.mark.parametrize("cert", ["foreign-client", None], ids=["foreign-ca-client", "no-client-cert"])
def test_a_client_the_engine_does_not_trust_is_refused(tls_daemon: TlsDaemon, cert: str | None) -> None:
    health = DockerExecutor().get_health_status(tls_daemon.host(cert=cert))
    assert not health.healthy
    assert "Docker host 'tls-docker' is unreachable" in (health.error or "")
    assert "SSL" in (health.error or "") or "certificate" in (health.error or "")


def test_an_engine_our_ca_did_not_sign_is_refused(tls_daemon: TlsDaemon) -> None:
    health = DockerExecutor().get_health_status(tls_daemon.host(ca="foreign-ca.pem"))
    assert not health.healthy
    assert "CERTIFICATE_VERIFY_FAILED" in (health.error or "")


def test_requests_ca_bundle_cannot_replace_the_hosts_ca(
    tls_daemon: TlsDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_daemon.path("foreign-ca.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", tls_daemon.path("foreign-ca.pem"))
    # Control: a docker-py client that trusts the environment is broken by it (docker-py #2433)...
    tls = docker.tls.TLSConfig(
        client_cert=(tls_daemon.path("client.pem"), tls_daemon.path("client.key")),
        ca_cert=tls_daemon.path("ca.pem"),
        verify=True,
    )
    trusting = docker.APIClient(
        base_url=f"tcp://127.0.0.1:{tls_daemon.port}", version="1.41", tls=tls, timeout=5
    )
    try:
        with pytest.raises(requests.exceptions.SSLError):
            trusting.ping()
    finally:
        trusting.close()
    # ...while the plugin's client keeps using the CA the host names.
    health = DockerExecutor().get_health_status(tls_daemon.host())
    assert health.healthy, health.error


def test_the_second_daemon_leaves_the_default_bridge_alone(tls_daemon: TlsDaemon) -> None:
    # Checked against --bridge=none: the TLS daemon deleted docker0 and every later bridged job failed.
    result = subprocess.run(
        ["ip", "link", "show", "docker0"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
