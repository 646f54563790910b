"""Health: healthy against the fake, and a clear reason (never an exception) for every way it is not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cloudrun_executor.plugin import CloudRunExecutor

from container_manager_core.types import HostSpec
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun


@pytest.fixture
def closed_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Return a loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_healthy_host_reports_where_it_looked(executor: CloudRunExecutor, cloudrun_host: HostSpec) -> None:
    health = executor.get_health_status(cloudrun_host)
    assert (health.healthy, health.error, health.engine_version) == (True, None, "Cloud Run Admin API v2")
    assert health.details["project"] == "fake-project"
    assert health.details["region"] == "europe-west1"


def test_denied_permissions_are_unhealthy_and_name_the_role(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun
) -> None:
    fake_cloudrun.deny_permissions()
    health = executor.get_health_status(cloudrun_host)
    assert not health.healthy
    assert health.error is not None
    assert "PERMISSION_DENIED" in health.error
    assert "roles/run.developer" in health.error
    assert health.engine_version is None


def test_denied_log_reading_is_unhealthy_too(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun
) -> None:
    fake_cloudrun.fail_next(
        "ListLogEntries", grpc.StatusCode.PERMISSION_DENIED, "No logging.logEntries.list."
    )
    health = executor.get_health_status(cloudrun_host)
    assert not health.healthy
    assert health.error is not None
    assert "roles/logging.viewer" in health.error


# A hang guard, not a measurement: a probe that ignored its deadline would wait for gRPC's own.
@pytest.mark.timeout(60)
def test_unreachable_endpoint_is_unhealthy(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, closed_port: int
) -> None:
    host = cloudrun_host_spec(
        fake_cloudrun, api_endpoint=f"127.0.0.1:{closed_port}", health_timeout_seconds=2
    )
    health = executor.get_health_status(host)
    assert not health.healthy
    assert health.error is not None
    assert "unreachable" in health.error


@pytest.mark.timeout(60)
def test_silent_endpoint_is_unhealthy_after_the_health_timeout(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, silent_port: int
) -> None:
    host = cloudrun_host_spec(
        fake_cloudrun, api_endpoint=f"127.0.0.1:{silent_port}", health_timeout_seconds=0.5
    )
    health = executor.get_health_status(host)
    assert not health.healthy
    assert health.error is not None
    assert "did not answer in time" in health.error  # the deadline expired, not the connection


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"project": None}, "needs 'project'"),
        (
            {"region": "Europe West 1"},
            "region must be a Cloud Run region such as 'europe-west1', got 'Europe West 1'",
        ),
        ({"api_endpoint": "https://example.com"}, "api_endpoint must be HOST:PORT (no scheme)"),
        ({"job_name_prefix": "Bad_Prefix"}, "job_name_prefix must be 1-20 lowercase letters"),
    ],
)
def test_misconfiguration_is_unhealthy_with_the_reason(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, change: dict[str, Any], expected: str
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, **change)
    if change.get("project", "") is None:
        host = HostSpec(
            host.name, host.executor_type, config={k: v for k, v in host.config.items() if k != "project"}
        )
    health = executor.get_health_status(cloudrun_host_spec(fake_cloudrun, **change))
    assert not health.healthy
    assert health.error is not None
    assert expected in health.error
    assert fake_cloudrun.calls == []


def test_anonymous_credentials_off_loopback_are_refused(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, api_endpoint="run.example.com:443")
    health = executor.get_health_status(host)
    assert not health.healthy
    assert health.error is not None
    assert "credentials 'anonymous' is only allowed together with an api_endpoint" in health.error


def test_missing_google_credentials_are_unhealthy_not_an_exception(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Google's auth chain reads GOOGLE_APPLICATION_CREDENTIALS first and fails at once when it names no file.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    host = HostSpec("real-cloudrun", "cloudrun", config={"project": "my-project", "region": "europe-west1"})
    health = executor.get_health_status(host)
    assert not health.healthy
    assert health.error is not None
    assert health.error.startswith("No Google credentials were found for Cloud Run host 'real-cloudrun'")
    assert "absent.json" in health.error
