"""Plugin discovery through entry points, dispatch by executor type, and the missing-plugin error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from container_manager_core import NoExecutorPlugin, PluginLoadError, PluginManager, hookimpl
from container_manager_core.plugins import ExecutorRegistry
from container_manager_core.types import Command, ExecutionStatus, HostSpec, JobSpec

THIRD_PARTY_PLUGIN = '''
from __future__ import annotations

from datetime import UTC, datetime

from container_manager_core import hookimpl
from container_manager_core.plugins import ExecutorPlugin
from container_manager_core.types import (
    Execution, ExecutionLogs, ExecutionState, ExecutionStatus, HealthStatus, ResourceUsage, Violation,
)


class EchoExecutor(ExecutorPlugin):
    """Runs nothing: every job "exits" at once and echoes its image name on stdout."""

    executor_type = "echo"

    def __init__(self):
        self.jobs = {}

    def launch_job(self, host, job):
        self.jobs[job.job_id] = job
        return Execution(job.job_id)

    def check_status(self, host, execution_id):
        if execution_id not in self.jobs:
            return ExecutionStatus(ExecutionState.NOT_FOUND)
        return ExecutionStatus(ExecutionState.EXITED, exit_code=7, finished_at=datetime.now(UTC))

    def get_logs(self, host, execution_id, *, timestamps):
        return ExecutionLogs(stdout=self.jobs[execution_id].image + "\\n")

    def get_usage(self, host, execution_id):
        return ResourceUsage()

    def stop_job(self, host, execution_id, *, grace_seconds):
        return False

    def cleanup(self, host, execution_id):
        return self.jobs.pop(execution_id, None) is not None

    def get_health_status(self, host):
        return HealthStatus(healthy=True, response_time=0.0, engine_version="echo-1")

    def list_executions(self, host):
        return [(job_id, job_id) for job_id in self.jobs]

    @hookimpl
    def validate_job(self, host, job, limits):
        if host is not None and host.executor_type == "echo" and "forbidden" in job.image:
            return [Violation("echo_forbidden_image", "The echo executor refuses forbidden images.", "image")]
        return []


plugin = EchoExecutor()
'''


def _install_fake_distribution(root: Path) -> Path:
    """Write a module plus a .dist-info with an entry point, as pip would, without pip."""
    (root / "thirdparty_echo.py").write_text(THIRD_PARTY_PLUGIN)
    dist = root / "thirdparty_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-echo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[container_manager]\necho = thirdparty_echo:plugin\n")
    return root


def _job(image: str = "example/app:1") -> JobSpec:
    return JobSpec(
        job_id="job-1",
        image=image,
        command=Command.shell("true"),
        user="1001:1001",
        memory_limit_mb=64,
        cpu_limit=0.5,
        pids_limit=64,
        timeout_seconds=60,
    )


def test_third_party_plugin_is_discovered_and_dispatched_to(tmp_path: Path) -> None:
    """An out-of-tree plugin with its own entry point works without any change to the core."""
    root = _install_fake_distribution(tmp_path)
    script = textwrap.dedent(
        """
        import attrs
        from container_manager_core import PluginManager, PolicyViolationError
        from container_manager_core.types import Command, HostSpec, JobSpec

        pm = PluginManager()
        types = pm.executor_types()
        assert types["echo"] == "echo", types
        assert "mock" in types, types
        host = HostSpec(name="h", executor_type="echo")
        job = JobSpec(job_id="j1", image="example/app:1", command=Command.shell("true"), user="1001:1001",
                      memory_limit_mb=64, cpu_limit=0.5, pids_limit=64, timeout_seconds=60)
        execution = pm.launch_job(host, job)
        status = pm.check_status(host, execution.execution_id)
        print(status.state.value, status.exit_code, pm.get_logs(host, execution.execution_id).stdout.strip())
        try:
            pm.launch_job(host, attrs.evolve(job, image="forbidden/app:1"))
        except PolicyViolationError as exc:
            print("refused:", [v.code for v in exc.violations])
        # The mock plugin's host is not dispatched to the echo plugin.
        print(pm.get_health_status(HostSpec(name="m", executor_type="mock")).engine_version)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "exited 7 example/app:1"
    assert lines[1] == "refused: ['echo_forbidden_image']"
    assert lines[2] == "mock-1"


def test_missing_executor_type_names_the_package_to_install() -> None:
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(NoExecutorPlugin) as info:
        pm.launch_job(HostSpec(name="h", executor_type="docker"), _job())
    assert str(info.value).startswith(
        "No executor plugin for 'docker': pip install \"container-manager-django[docker]\""
    )
    with pytest.raises(
        NoExecutorPlugin,
        match=r"No executor plugin for 'cloudrun': pip install \"container-manager-django\[cloudrun\]\"",
    ):
        pm.get_health_status(HostSpec(name="h", executor_type="cloudrun"))


def test_unknown_third_party_type_explains_the_entry_point_group() -> None:
    pm = PluginManager()
    with pytest.raises(NoExecutorPlugin, match="entry-point group"):
        pm.check_status(HostSpec(name="h", executor_type="nomad"), "x")


def test_installed_plugins_are_listed_by_entry_point() -> None:
    types = PluginManager().executor_types()
    assert types["mock"] == "mock"


def test_two_plugins_claiming_one_type_is_an_error_naming_both() -> None:
    from mock_executor.plugin import MockExecutor

    pm = PluginManager(load_entry_points=False)
    first = MockExecutor()
    pm.register(first, name="first")
    with pytest.raises(
        PluginLoadError,
        match=r"Executor plugin 'second' failed to load: .*executor type 'mock' is already provided by plugin 'first'",
    ):
        pm.register(MockExecutor(), name="second")
    assert pm.executor_types() == {"mock": "first"}
    assert pm.executor("mock") is first
    pm.unregister("first")
    assert pm.executor_types() == {}


def test_each_plugin_registers_its_executors_once_and_calls_go_straight_to_it() -> None:
    from mock_executor.plugin import MockExecutor

    registrations: list[str] = []
    asked: list[str] = []

    class CountingMock(MockExecutor):
        @hookimpl
        def register_executors(self, registry: ExecutorRegistry) -> None:
            registrations.append(self.executor_type)
            super().register_executors(registry)

        def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
            asked.append(host.executor_type)
            return super().check_status(host, execution_id)

    class OtherMock(CountingMock):
        executor_type = "other-mock"

    pm = PluginManager(load_entry_points=False)
    pm.register(CountingMock(), name="mock")
    pm.register(OtherMock(), name="other")
    for _ in range(3):
        pm.check_status(HostSpec(name="h", executor_type="mock"), "x")
    assert registrations == ["mock", "other-mock"]
    assert asked == ["mock"] * 3  # the other plugin is never asked about a host that is not its own


class MisspelledValidator:
    @hookimpl
    def validate_jobs(self, host: HostSpec | None, job: JobSpec, limits: object) -> list[object]:
        return []


class OperationMarkedAsHook:
    @hookimpl
    def launch_job(self, host: HostSpec, job: JobSpec) -> None:
        return None


@pytest.mark.parametrize(
    ("plugin", "hook"), [(MisspelledValidator, "validate_jobs"), (OperationMarkedAsHook, "launch_job")]
)
def test_a_hook_with_no_specification_is_refused_naming_the_plugin(plugin: type, hook: str) -> None:
    # Checked against a manager that did not call check_pending(): both plugins registered silently,
    # and the misspelled validator was simply never called.
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(
        PluginLoadError, match=rf"Executor plugin 'sloppy' failed to load: unknown hook '{hook}'"
    ) as info:
        pm.register(plugin(), name="sloppy")
    assert "the hooks are register_executors, validate_job, validate_host" in str(info.value)
    assert pm.executor_types() == {}
    pm.register(object(), name="sloppy")  # refused and forgotten: the name is free again


def test_an_installed_plugin_with_a_misspelled_hook_names_its_distribution(tmp_path: Path) -> None:
    (tmp_path / "sloppy_exec.py").write_text(
        "from container_manager_core import hookimpl\n"
        "class Sloppy:\n"
        "    @hookimpl\n"
        "    def validate_hots(self, host):\n"
        "        return []\n"
        "plugin = Sloppy()\n"
    )
    dist = tmp_path / "sloppy_exec-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sloppy-exec\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[container_manager]\nsloppy = sloppy_exec:plugin\n")
    result = subprocess.run(
        [sys.executable, "-c", "from container_manager_core import PluginManager\nPluginManager()"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert (
        "PluginLoadError: Executor plugin 'sloppy' from the distribution 'sloppy-exec' failed to load: "
        "unknown hook 'validate_hots'"
    ) in result.stderr


def test_an_executor_that_is_not_an_executor_plugin_is_refused() -> None:
    class Stray:
        @hookimpl
        def register_executors(self, registry: ExecutorRegistry) -> None:
            registry.add(object())  # type: ignore[arg-type]

    pm = PluginManager(load_entry_points=False)
    with pytest.raises(PluginLoadError, match="'stray' failed to load: TypeError: register_executors added"):
        pm.register(Stray(), name="stray")


def test_launch_enforces_the_policy_before_the_plugin_sees_the_job() -> None:
    from mock_executor.plugin import MockExecutor

    from container_manager_core import PolicyViolationError

    executor = MockExecutor()
    pm = PluginManager(load_entry_points=False)
    pm.register(executor, name="mock")
    bad = JobSpec(job_id="j", image="busybox", user="0", read_only_root=False)
    with pytest.raises(PolicyViolationError) as info:
        pm.launch_job(HostSpec(name="h", executor_type="mock"), bad)
    codes = {v.code for v in info.value.violations}
    assert len(codes) >= 5  # root user, writable root, and each missing limit
    assert executor.launch_count == 0


def test_core_does_not_import_django() -> None:
    script = (
        "import sys, container_manager_core, container_manager_core.plugins, container_manager_core.policy, "
        "container_manager_core.testing.contract; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith(('django.', 'container_manager.'))); "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_broken_plugin_names_its_distribution(tmp_path: Path) -> None:
    dist = tmp_path / "broken_exec-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-exec\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[container_manager]\nbroken = broken_exec_missing:plugin\n")
    script = "from container_manager_core import PluginManager\nPluginManager()"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert (
        "PluginLoadError: Executor plugin 'broken' from the distribution 'broken-exec' failed to load"
        in result.stderr
    )


def test_an_executor_plugin_that_registers_nothing_is_refused() -> None:
    from mock_executor.plugin import MockExecutor

    class Unmarked(MockExecutor):
        def register_executors(self, registry: ExecutorRegistry) -> None:  # no @hookimpl: never called
            super().register_executors(registry)

    pm = PluginManager(load_entry_points=False)
    with pytest.raises(PluginLoadError, match=r"Unmarked registered no executor: .* needs @hookimpl"):
        pm.register(Unmarked(), name="unmarked")
