"""ExecutorFactory: the documented facade, bound to one host, calling its plugin through the core."""

from __future__ import annotations

import logging
import re

import pytest
from mock_executor.plugin import plugin as mock_plugin

from container_manager.exceptions import InvalidExecutor
from container_manager.executors import factory as factory_module
from container_manager.executors.factory import ExecutorFactory, HostExecutor
from container_manager.models import ContainerJob
from container_manager_core.errors import ExecutorUnavailable, PolicyViolationError
from container_manager_core.plugins import ExecutorPlugin, PluginManager
from container_manager_core.types import Execution, HealthStatus, HostSpec, ResourceUsage
from tests.factories import make_host, make_job

pytestmark = pytest.mark.django_db


def test_a_job_runs_through_the_facade(host):
    job = make_job(
        host=host,
        environment_vars={"MOCK_STDOUT": "hello", "MOCK_STDERR": "warn", "MOCK_EXIT_CODE": "3"},
    )
    executor = ExecutorFactory.create_executor("mock", {"docker_host": host})

    execution_id = executor.launch_job(job)

    assert execution_id.startswith("mock-")
    assert executor.check_status(execution_id) == "exited"
    assert executor.get_logs(execution_id) == ("hello\n", "warn\n")
    assert executor.get_usage(execution_id) == ResourceUsage(4 * 1024 * 1024, 1.0)
    assert executor.stop(execution_id, grace_seconds=1) is False  # it had already exited
    assert executor.cleanup(execution_id) is True
    assert executor.cleanup(execution_id) is False
    assert executor.check_status(execution_id) == "not-found"


def test_a_running_job_reports_running_and_can_be_stopped(host):
    job = make_job(host=host, environment_vars={"MOCK_DURATION": "60"})
    executor = ExecutorFactory.create_executor("mock", {"docker_host": host})
    execution_id = executor.launch_job(job)
    assert executor.check_status(execution_id) == "running"
    assert executor.stop(execution_id) is True
    assert executor.check_status(execution_id) == "exited"


def test_the_facade_has_the_executor_operations_names(host):
    job = make_job(host=host, environment_vars={"MOCK_DURATION": "60"})
    executor = ExecutorFactory.create_executor("mock", {"docker_host": host})
    execution_id = executor.launch_job(job)
    assert [eid for _, eid in executor.list_executions()] == [execution_id]
    assert executor.wait_for_exit(execution_id, 0.05) is False
    assert executor.stop_job(execution_id, grace_seconds=1) is True
    assert executor.wait_for_exit(execution_id, 5) is True
    assert executor.stop_job(execution_id) is False
    assert HostExecutor.stop is HostExecutor.stop_job  # the older documented name still works


def test_the_host_may_be_named(host):
    executor = ExecutorFactory.create_executor("mock", {"docker_host": "mock-1"})
    assert executor.host == host


def test_health_is_the_documented_dict(db):
    sick = make_host("sick", executor_config={"unhealthy": "disk full"})
    health = ExecutorFactory.create_executor("mock", {"docker_host": sick}).get_health_status()
    assert health["healthy"] is False
    assert health["error"] == "disk full"
    assert set(health) >= {"healthy", "response_time", "error"}


def test_an_unknown_executor_type_names_the_package_to_install(host):
    with pytest.raises(InvalidExecutor, match=r"No executor plugin for 'nomad': install a package"):
        ExecutorFactory.create_executor("nomad", {"docker_host": host})


def test_a_missing_known_plugin_gives_the_pip_hint(host, monkeypatch):
    bare = PluginManager(load_entry_points=False)
    monkeypatch.setattr(factory_module, "get_plugin_manager", lambda: bare)
    with pytest.raises(
        InvalidExecutor,
        match=r"No executor plugin for 'docker': pip install \"container-manager-django\[docker\]\"",
    ):
        ExecutorFactory.create_executor("docker", {"docker_host": host})


def test_a_host_of_another_type_is_refused(host):
    with pytest.raises(InvalidExecutor, match="Host 'mock-1' is a 'mock' host, not 'docker'"):
        ExecutorFactory.create_executor("docker", {"docker_host": host})


def test_a_missing_host_is_refused(db):
    with pytest.raises(InvalidExecutor, match=re.escape("needs {'docker_host': <ExecutorHost>}")):
        ExecutorFactory.create_executor("mock", {})


def test_launch_enforces_the_policy_and_logs_a_security_event(host, settings, caplog):
    job = make_job(host=host)
    settings.CONTAINER_MANAGER = {"MAX_MEMORY_MB": 128, "DEFAULT_MEMORY_LIMIT_MB": 64}
    caplog.set_level(logging.WARNING, logger="container_manager.security")
    executor = ExecutorFactory.create_executor("mock", {"docker_host": host})
    with pytest.raises(PolicyViolationError) as info:
        executor.launch_job(job)
    assert [v.code for v in info.value.violations] == ["memory_limit_too_high"]
    assert mock_plugin.launch_count == 0
    [record] = caplog.records
    assert "source=launch" in record.getMessage() and "memory_limit_too_high" in record.getMessage()


def test_plugin_errors_reach_the_caller_typed(db):
    down = make_host("down", executor_config={"unreachable": True})
    job = ContainerJob.objects.create_job("busybox:latest", "true", docker_host=make_host("up"))
    with pytest.raises(ExecutorUnavailable):
        ExecutorFactory.create_executor("mock", {"docker_host": down}).launch_job(job)


def test_get_client_says_when_the_plugin_has_no_client(host):
    executor = ExecutorFactory.create_executor("mock", {"docker_host": host})
    with pytest.raises(AttributeError, match="'mock' executor plugin MockExecutor has no SDK client"):
        executor._get_client(host)


class _ClientPlugin(ExecutorPlugin):
    """A plugin with an SDK client, like the Docker plugin's ``_get_client(host_spec)``."""

    executor_type = "withclient"

    def _get_client(self, host: HostSpec) -> tuple[str, str]:
        return ("client-for", host.name)

    def launch_job(self, host, job):
        return Execution("x")

    def check_status(self, host, execution_id):
        raise NotImplementedError

    def get_logs(self, host, execution_id, *, timestamps):
        raise NotImplementedError

    def get_usage(self, host, execution_id):
        raise NotImplementedError

    def stop_job(self, host, execution_id, *, grace_seconds):
        raise NotImplementedError

    def cleanup(self, host, execution_id):
        raise NotImplementedError

    def get_health_status(self, host):
        return HealthStatus(healthy=True, response_time=0.0)

    def list_executions(self, host):
        return []


def test_get_client_delegates_to_the_plugin(db, monkeypatch):
    manager = PluginManager(load_entry_points=False)
    manager.register(_ClientPlugin(), name="withclient")
    monkeypatch.setattr(factory_module, "get_plugin_manager", lambda: manager)
    host = make_host("clienthost", executor_type="withclient")
    executor = ExecutorFactory.create_executor("withclient", {"docker_host": host})
    assert executor._get_client(host) == ("client-for", "clienthost")
    assert executor._get_client() == ("client-for", "clienthost")
    assert executor._get_client(HostSpec(name="other", executor_type="withclient")) == ("client-for", "other")
