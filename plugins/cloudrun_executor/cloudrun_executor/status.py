"""Map a Cloud Run execution (and its task) to an :class:`ExecutionStatus`.

Cloud Run reports an execution's progress in its ``Completed`` condition; the exit code lives on the
task's last attempt (``exit_code``, or ``term_signal`` for a container the system killed), and
otherwise only in the condition's message ("... The container exited with an exit code of 3.",
"exit code: 3 and message: ..."), which is read as a fallback. A failure that names no code (the
container never started, "The container exited with an error.") has an unknown exit code: None,
never a made-up 1. A cancel is recognised before anything else, and success needs every task to
have succeeded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from google.cloud import run_v2

from container_manager_core.types import ExecutionState, ExecutionStatus

COMPLETED = "Completed"
_State = run_v2.Condition.State
_Reason = run_v2.Condition.ExecutionReason

# The one state map: the Completed condition's state -> our state.
STATE_BY_CONDITION: dict[int, ExecutionState] = {
    _State.STATE_UNSPECIFIED: ExecutionState.PENDING,
    _State.CONDITION_PENDING: ExecutionState.PENDING,
    _State.CONDITION_RECONCILING: ExecutionState.RUNNING,
    _State.CONDITION_SUCCEEDED: ExecutionState.EXITED,
    _State.CONDITION_FAILED: ExecutionState.EXITED,
}

_EXIT_CODE = re.compile(r"exit code(?: of)?:? (\d+)", re.IGNORECASE)
_TIMEOUT = re.compile(r"timeout was reached|timed out", re.IGNORECASE)
_DEADLINE_EXCEEDED = 4  # google.rpc.Code
CANCELLED = "cancelled"


def completed_condition(execution: run_v2.Execution) -> run_v2.Condition | None:
    """Return the execution's ``Completed`` condition, if Cloud Run has set it."""
    return next((c for c in execution.conditions if c.type_ == COMPLETED), None)


def execution_state(execution: run_v2.Execution) -> ExecutionState:
    """Return where the execution is in its life, from its ``Completed`` condition."""
    condition = completed_condition(execution)
    state = STATE_BY_CONDITION.get(
        condition.state if condition else _State.STATE_UNSPECIFIED, ExecutionState.PENDING
    )
    # Cloud Run reconciles an execution from the moment it is created; it runs once it has started.
    if state is ExecutionState.RUNNING and execution.start_time is None and not execution.running_count:
        return ExecutionState.PENDING
    return state


def cancelled(execution: run_v2.Execution) -> bool:
    """Say whether the execution was cancelled, whatever state its Completed condition reads."""
    condition = completed_condition(execution)
    return bool(execution.cancelled_count) or (
        condition is not None and condition.execution_reason == _Reason.CANCELLED
    )


def succeeded(execution: run_v2.Execution) -> bool:
    """Say whether the execution succeeded: not cancelled, and every one of its tasks succeeded."""
    condition = completed_condition(execution)
    return (
        condition is not None
        and condition.state == _State.CONDITION_SUCCEEDED
        and not cancelled(execution)
        and execution.succeeded_count >= max(1, execution.task_count)
    )


def needs_tasks(execution: run_v2.Execution) -> bool:
    """Say whether the status needs the task's last attempt: an exited execution that did not succeed."""
    return execution_state(execution) is ExecutionState.EXITED and not succeeded(execution)


def has_attempt_result(tasks: Sequence[run_v2.Task]) -> bool:
    """Say whether Cloud Run has filled in the last attempt's result (it may lag the execution)."""
    return _last_attempt(tasks) is not None


def execution_status(execution: run_v2.Execution, tasks: Sequence[run_v2.Task] = ()) -> ExecutionStatus:
    """Return the status of ``execution``; pass its tasks when :func:`needs_tasks` says so."""
    state = execution_state(execution)
    started: datetime | None = execution.start_time
    finished: datetime | None = execution.completion_time
    if state is not ExecutionState.EXITED:
        return ExecutionStatus(state, started_at=started)
    exit_code, error = _exit(execution, tasks)
    return ExecutionStatus(state, exit_code=exit_code, started_at=started, finished_at=finished, error=error)


def _exit(execution: run_v2.Execution, tasks: Sequence[run_v2.Task]) -> tuple[int | None, str | None]:
    condition = completed_condition(execution)
    attempt = _last_attempt(tasks)
    task_code = _task_exit_code(attempt)
    if cancelled(execution):
        return task_code, CANCELLED
    if succeeded(execution):
        return 0, None
    message = _failure_message(condition, tasks, attempt)
    if _TIMEOUT.search(message) or (attempt is not None and attempt.status.code == _DEADLINE_EXCEEDED):
        timeout = execution.template.timeout
        limit = f" of {int(timeout.total_seconds())} s" if timeout else ""
        return task_code, f"The task ran past its timeout{limit} and Cloud Run stopped it ({message})."
    if task_code is not None:
        return task_code, None
    if (match := _EXIT_CODE.search(message)) is not None:
        return int(match[1]), None
    # No code anywhere: unknown, with Cloud Run's words for what happened.
    return None, message or "Cloud Run reported the execution as failed without saying why."


def _last_attempt(tasks: Sequence[run_v2.Task]) -> run_v2.TaskAttemptResult | None:
    # Jobs run one task (task_count=1); its last attempt is the one that decided the execution.
    for task in sorted(tasks, key=lambda t: t.index):
        if "last_attempt_result" in task:
            result: run_v2.TaskAttemptResult = task.last_attempt_result
            return result
    return None


def _task_exit_code(attempt: run_v2.TaskAttemptResult | None) -> int | None:
    # 0 on a failed attempt means "unset": the container did not exit cleanly with a code.
    if attempt is None:
        return None
    if attempt.exit_code:
        return int(attempt.exit_code)
    if attempt.term_signal:
        return 128 + int(attempt.term_signal)  # the shell's convention, as Docker reports it
    return None


def _failure_message(
    condition: run_v2.Condition | None, tasks: Sequence[run_v2.Task], attempt: run_v2.TaskAttemptResult | None
) -> str:
    parts = [condition.message if condition else "", attempt.status.message if attempt else ""]
    parts += [c.message for task in tasks for c in task.conditions if c.state == _State.CONDITION_FAILED]
    return " ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
