"""Contract tests: launch -> status -> logs -> usage -> cleanup, and the edge cases around them."""

from __future__ import annotations

import time
import uuid
from typing import Protocol

import attrs
import pytest

from container_manager_core.errors import ExecutionNotFound
from container_manager_core.plugins import ExecutorPlugin, PluginManager
from container_manager_core.types import ExecutionState, ExecutionStatus, HostSpec, JobSpec


class JobFactory(Protocol):
    def __call__(
        self, *, stdout: str = "", stderr: str = "", exit_code: int = 0, duration: float = 0.0
    ) -> JobSpec: ...


def exited_status(
    manager: PluginManager, host: HostSpec, execution_id: str, timeout: float
) -> ExecutionStatus:
    """Wait with ``wait_for_exit`` until the execution exits and return its status; fail the test
    after ``timeout`` seconds or if it vanishes."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        ended = manager.wait_for_exit(host, execution_id, max(0.0, min(5.0, remaining)))
        status = manager.check_status(host, execution_id)
        if status.state is ExecutionState.EXITED:
            return status
        if status.state is ExecutionState.NOT_FOUND:
            pytest.fail(f"Execution {execution_id!r} vanished before it exited.")
        if ended:
            pytest.fail(f"wait_for_exit said {execution_id!r} had exited, but its state is {status}.")
        if remaining <= 0:
            pytest.fail(f"Execution {execution_id!r} did not exit within {timeout} s (last: {status}).")


class ExecutorContract:
    """Behaviour every executor plugin must have. Subclass it and provide the two fixtures."""

    def test_plugin_is_discovered(self, contract_manager: PluginManager, contract_host: HostSpec) -> None:
        assert contract_host.executor_type in contract_manager.executor_types()
        executor = contract_manager.executor(contract_host.executor_type)
        assert isinstance(executor, ExecutorPlugin)
        assert executor.executor_type == contract_host.executor_type

    def test_health(self, contract_manager: PluginManager, contract_host: HostSpec) -> None:
        health = contract_manager.get_health_status(contract_host)
        assert health.healthy, health.error
        assert health.error is None
        assert health.response_time >= 0
        as_dict = health.as_dict()
        assert as_dict["healthy"] is True
        assert {"healthy", "response_time", "error", "engine_version"} <= set(as_dict)

    def test_full_lifecycle(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        job = contract_job(stdout="hello from the contract", exit_code=0, duration=0.5)
        execution = contract_manager.launch_job(contract_host, job)
        assert execution.execution_id
        assert not execution.adopted
        try:
            first = contract_manager.check_status(contract_host, execution.execution_id)
            assert first.state in {ExecutionState.PENDING, ExecutionState.RUNNING, ExecutionState.EXITED}
            status = exited_status(contract_manager, contract_host, execution.execution_id, contract_timeout)
            assert status.exit_code == 0
            assert not status.oom_killed
            logs = contract_manager.get_logs(contract_host, execution.execution_id)
            assert "hello from the contract" in logs.stdout
            assert "hello from the contract" not in logs.stderr
            usage = contract_manager.get_usage(contract_host, execution.execution_id)
            if usage.peak_memory_bytes is not None:
                assert usage.peak_memory_bytes >= 0
            if usage.average_cpu_percent is not None:
                assert usage.average_cpu_percent >= 0
        finally:
            assert contract_manager.cleanup(contract_host, execution.execution_id) is True
        after = contract_manager.check_status(contract_host, execution.execution_id)
        assert after.state is ExecutionState.NOT_FOUND

    @pytest.mark.parametrize("code", [1, 3, 42])
    def test_non_zero_exit_code(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
        code: int,
    ) -> None:
        execution = contract_manager.launch_job(contract_host, contract_job(stderr="boom", exit_code=code))
        try:
            status = exited_status(contract_manager, contract_host, execution.execution_id, contract_timeout)
            assert status.exit_code == code
            assert not status.oom_killed
        finally:
            contract_manager.cleanup(contract_host, execution.execution_id)

    def test_stdout_and_stderr_stay_apart(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        # The words are chosen so that keyword-based splitting ("error" -> stderr) would fail.
        job = contract_job(stdout="error: this line is stdout", stderr="all good: this line is stderr")
        execution = contract_manager.launch_job(contract_host, job)
        try:
            exited_status(contract_manager, contract_host, execution.execution_id, contract_timeout)
            logs = contract_manager.get_logs(contract_host, execution.execution_id)
            assert "error: this line is stdout" in logs.stdout
            assert "all good: this line is stderr" in logs.stderr
            assert "this line is stderr" not in logs.stdout
            assert "this line is stdout" not in logs.stderr
            stamped = contract_manager.get_logs(contract_host, execution.execution_id, timestamps=True)
            assert stamped.timestamps
            assert "error: this line is stdout" in stamped.stdout
        finally:
            contract_manager.cleanup(contract_host, execution.execution_id)

    def test_second_launch_of_same_job_adopts(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        job = contract_job(stdout="once", duration=0.5)
        first = contract_manager.launch_job(contract_host, job)
        try:
            second = contract_manager.launch_job(contract_host, job)
            assert second.execution_id == first.execution_id
            assert second.adopted
            exited_status(contract_manager, contract_host, first.execution_id, contract_timeout)
            assert contract_manager.get_logs(contract_host, first.execution_id).stdout.count("once") == 1
        finally:
            contract_manager.cleanup(contract_host, first.execution_id)

    def test_unknown_execution_id(self, contract_manager: PluginManager, contract_host: HostSpec) -> None:
        unknown = f"no-such-execution-{uuid.uuid4().hex}"
        status = contract_manager.check_status(contract_host, unknown)
        assert status.state is ExecutionState.NOT_FOUND
        with pytest.raises(ExecutionNotFound):
            contract_manager.get_logs(contract_host, unknown)
        with pytest.raises(ExecutionNotFound):
            contract_manager.stop_job(contract_host, unknown, grace_seconds=1)
        assert contract_manager.cleanup(contract_host, unknown) is False

    def test_cleanup_twice_is_harmless(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        execution = contract_manager.launch_job(contract_host, contract_job(stdout="x"))
        exited_status(contract_manager, contract_host, execution.execution_id, contract_timeout)
        assert contract_manager.cleanup(contract_host, execution.execution_id) is True
        assert contract_manager.cleanup(contract_host, execution.execution_id) is False

    def test_stop_ends_a_running_job(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        execution = contract_manager.launch_job(contract_host, contract_job(duration=120))
        try:
            started = time.monotonic()
            assert contract_manager.stop_job(contract_host, execution.execution_id, grace_seconds=1) is True
            status = exited_status(contract_manager, contract_host, execution.execution_id, contract_timeout)
            assert time.monotonic() - started < 60
            assert not status.oom_killed
            assert contract_manager.stop_job(contract_host, execution.execution_id, grace_seconds=1) is False
        finally:
            contract_manager.cleanup(contract_host, execution.execution_id)

    def test_lists_its_executions(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        job = contract_job(stdout="listed")
        execution = contract_manager.launch_job(contract_host, job)
        try:
            assert (job.job_id, execution.execution_id) in contract_manager.list_executions(contract_host)
        finally:
            contract_manager.cleanup(contract_host, execution.execution_id)
        assert (job.job_id, execution.execution_id) not in contract_manager.list_executions(contract_host)

    def test_wait_for_exit_reports_an_exit(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        quick = contract_manager.launch_job(contract_host, contract_job(stdout="quick"))
        slow = contract_manager.launch_job(contract_host, contract_job(duration=120))
        try:
            deadline = time.monotonic() + contract_timeout
            exited = False
            while not exited and time.monotonic() < deadline:
                exited = contract_manager.wait_for_exit(contract_host, quick.execution_id, 5)
            assert exited, f"wait_for_exit never reported the exit of {quick.execution_id!r}"
            assert contract_manager.check_status(contract_host, quick.execution_id).state is (
                ExecutionState.EXITED
            )
            assert contract_manager.wait_for_exit(contract_host, slow.execution_id, 0.2) is False
            unknown = f"no-such-execution-{uuid.uuid4().hex}"
            assert contract_manager.wait_for_exit(contract_host, unknown, 1) is True, "gone counts as exited"
        finally:
            contract_manager.stop_job(contract_host, slow.execution_id, grace_seconds=1)
            contract_manager.cleanup(contract_host, slow.execution_id)
            contract_manager.cleanup(contract_host, quick.execution_id)

    def test_other_owners_executions_are_invisible(
        self,
        contract_manager: PluginManager,
        contract_host: HostSpec,
        contract_job: JobFactory,
        contract_timeout: float,
    ) -> None:
        # Two deployments (two databases of jobs) sharing one engine must never reap each other's work.
        stranger = attrs.evolve(contract_host, owner=f"{contract_host.owner}-stranger")
        job = contract_job(stdout="mine")
        execution = contract_manager.launch_job(contract_host, job)
        try:
            listed = contract_manager.list_executions(stranger)
            assert (job.job_id, execution.execution_id) not in listed
            assert (job.job_id, execution.execution_id) in contract_manager.list_executions(contract_host)
            assert contract_manager.check_status(contract_host, execution.execution_id).state is not (
                ExecutionState.NOT_FOUND
            )
        finally:
            contract_manager.cleanup(contract_host, execution.execution_id)
