"""How Cloud Run's execution and task messages map to an ExecutionStatus, case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cloudrun_executor.status import STATE_BY_CONDITION, execution_status, needs_tasks
from google.cloud import run_v2

from container_manager_core.types import ExecutionState

pytestmark = pytest.mark.cloudrun

State = run_v2.Condition.State
Reason = run_v2.Condition.ExecutionReason
STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def execution(
    state: int, message: str = "", *, reason: int = Reason.EXECUTION_REASON_UNDEFINED, **fields: object
) -> run_v2.Execution:
    return run_v2.Execution(
        name="projects/p/locations/europe-west1/jobs/cm-x/executions/cm-x-abcde",
        conditions=[
            run_v2.Condition(type_="Completed", state=state, message=message, execution_reason=reason)
        ],
        **fields,
    )


def failed_task(*, exit_code: int = 0, term_signal: int = 0, message: str = "") -> run_v2.Task:
    return run_v2.Task(
        index=0,
        last_attempt_result=run_v2.TaskAttemptResult(
            status={"code": 2, "message": message}, exit_code=exit_code, term_signal=term_signal
        ),
    )


def test_every_condition_state_has_a_mapping() -> None:
    assert set(STATE_BY_CONDITION) == set(State)


def test_reconciling_before_the_start_is_pending_and_after_it_running() -> None:
    assert execution_status(execution(State.CONDITION_RECONCILING)).state is ExecutionState.PENDING
    running = execution_status(execution(State.CONDITION_RECONCILING, start_time=STARTED))
    assert (running.state, running.started_at) == (ExecutionState.RUNNING, STARTED)


def test_no_completed_condition_yet_is_pending() -> None:
    assert execution_status(run_v2.Execution(name="x")).state is ExecutionState.PENDING


def test_success_is_exit_zero_with_times() -> None:
    done = STARTED + timedelta(seconds=3)
    status = execution_status(
        execution(State.CONDITION_SUCCEEDED, start_time=STARTED, completion_time=done, succeeded_count=1)
    )
    assert (status.state, status.exit_code, status.error) == (ExecutionState.EXITED, 0, None)
    assert (status.started_at, status.finished_at) == (STARTED, done)


def test_only_a_failed_execution_needs_its_tasks() -> None:
    assert needs_tasks(execution(State.CONDITION_FAILED))
    assert not needs_tasks(execution(State.CONDITION_SUCCEEDED, succeeded_count=1))
    assert not needs_tasks(execution(State.CONDITION_RECONCILING))


def test_exit_code_comes_from_the_tasks_last_attempt() -> None:
    status = execution_status(execution(State.CONDITION_FAILED, "Task failed."), [failed_task(exit_code=42)])
    assert (status.exit_code, status.error) == (42, None)


def test_exit_code_falls_back_to_the_failure_message() -> None:
    message = "Task cm-x-abcde-task0 failed with message: The container exited with an exit code of 7."
    status = execution_status(execution(State.CONDITION_FAILED, message), [])
    assert (status.exit_code, status.error) == (7, None)


def test_a_signal_is_reported_the_shells_way() -> None:
    status = execution_status(execution(State.CONDITION_FAILED, "Killed."), [failed_task(term_signal=9)])
    assert status.exit_code == 137


def test_failure_without_a_code_is_unknown_with_the_message() -> None:
    message = "Task cm-x-abcde-task0 failed with message: Image could not be started."
    status = execution_status(execution(State.CONDITION_FAILED, message), [failed_task()])
    assert status.exit_code is None
    assert status.error is not None
    assert "Image could not be started" in status.error


def test_failure_without_any_message_still_explains() -> None:
    status = execution_status(execution(State.CONDITION_FAILED), [])
    assert (status.exit_code, status.error) == (
        None,
        "Cloud Run reported the execution as failed without saying why.",
    )


def test_cancelled_by_reason_or_by_count() -> None:
    by_reason = execution(State.CONDITION_FAILED, "The execution was cancelled.", reason=Reason.CANCELLED)
    by_count = execution(State.CONDITION_FAILED, cancelled_count=1)
    for cancelled in (by_reason, by_count):
        status = execution_status(cancelled, [])
        assert (status.state, status.error, status.exit_code) == (ExecutionState.EXITED, "cancelled", None)


def test_cancelling_is_still_running() -> None:
    cancelling = execution(State.CONDITION_RECONCILING, reason=Reason.CANCELLING, start_time=STARTED)
    assert execution_status(cancelling).state is ExecutionState.RUNNING


def test_timeout_from_the_message_names_the_task_timeout() -> None:
    timed_out = execution(
        State.CONDITION_FAILED,
        "Task cm-x-abcde-task0 failed with message: The configured timeout was reached.",
        template=run_v2.TaskTemplate(timeout=timedelta(minutes=5)),
    )
    status = execution_status(timed_out, [failed_task(message="The configured timeout was reached.")])
    assert status.exit_code is None
    assert status.error is not None
    assert status.error.startswith("The task ran past its timeout of 300 s and Cloud Run stopped it")


def test_timeout_from_a_deadline_exceeded_attempt() -> None:
    task = run_v2.Task(
        index=0, last_attempt_result=run_v2.TaskAttemptResult(status={"code": 4, "message": "Deadline."})
    )
    status = execution_status(execution(State.CONDITION_FAILED, "Task failed."), [task])
    assert status.error is not None
    assert "ran past its timeout" in status.error
