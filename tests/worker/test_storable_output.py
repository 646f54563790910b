"""Output that is not storable text becomes row fields every database stores, the replaced bytes counted.

On PostgreSQL these saves failed before: text refuses NUL ("PostgreSQL text fields cannot contain
NUL (0x00) bytes"), jsonb refuses ``\\u0000`` and lone surrogate escapes, NaN, and no database
driver encodes a lone surrogate.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from container_manager import sqltext
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from container_manager.worker.outcome import harvest_fields
from container_manager_core.logtext import NUL_REPLACEMENT
from container_manager_core.types import ExecutionLogs, ExecutionState, ExecutionStatus
from tests.factories import advance
from tests.worker.conftest import make_job

NUL, BAD = NUL_REPLACEMENT, "\ufffd"
EXITED = ExecutionStatus(ExecutionState.EXITED, exit_code=0)


def test_harvest_fields_make_output_storable_and_add_to_the_plugins_counts() -> None:
    logs = ExecutionLogs(
        stdout='2024-01-02T03:04:05Z a\x00b\udcff\n2024-01-02T03:04:05Z {"k\\u0000": ["\\udc00", NaN]}\n',
        stderr="\x00\x00",
        timestamps=True,
        stdout_dropped_bytes=7,
        stdout_replaced_bytes=4,  # what the plugin's own decoding replaced
    )
    fields = harvest_fields(EXITED, logs, None)
    assert fields["stdout_log"] == (
        f'2024-01-02T03:04:05Z a{NUL}b{BAD * 3}\n2024-01-02T03:04:05Z {{"k\\u0000": ["\\udc00", NaN]}}\n'
    )
    assert fields["clean_output"] == f'a{NUL}b{BAD * 3}\n{{"k\\u0000": ["\\udc00", NaN]}}\n'
    assert fields["parsed_output"] is None  # NaN is not JSON
    assert fields["stderr_log"] == NUL * 2
    assert (fields["stdout_replaced_bytes"], fields["stderr_replaced_bytes"]) == (4 + 1 + 3, 2)
    assert fields["stdout_dropped_bytes"] == 7

    json_logs = ExecutionLogs(stdout='{"k\\u0000": ["\\udc00", 1e308], "\\ud83d\\ude00": true}')
    fields = harvest_fields(EXITED, json_logs, None)
    assert fields["parsed_output"] == {f"k{NUL}": [BAD * 3, 1e308], "\U0001f600": True}  # a pair is fine
    assert fields["stdout_replaced_bytes"] == 0  # the text was storable; only its JSON meaning was not


@pytest.mark.django_db
def test_the_harvested_fields_of_unstorable_output_are_stored(host: ExecutorHost) -> None:
    job = advance(make_job(host), JobStatus.RUNNING)
    logs = ExecutionLogs(stdout='a\x00\udcff\n{"a": "\\u0000\\ud800"}\n', stderr="\ud800\x00")
    advance_fields = harvest_fields(EXITED, logs, None)
    ContainerJob.objects.filter(pk=job.pk).update(**advance_fields)
    job.refresh_from_db()
    assert job.stdout_log == f'a{NUL}{BAD * 3}\n{{"a": "\\u0000\\ud800"}}\n'
    assert job.parsed_output == {"a": f"{NUL}{BAD * 3}"}
    assert job.stderr_log == f"{BAD * 3}{NUL}"
    assert (job.stdout_replaced_bytes, job.stderr_replaced_bytes) == (4, 4)


@pytest.mark.django_db
def test_texts_that_may_quote_output_store_any_str_whichever_path_writes_them(host: ExecutorHost) -> None:
    quoted = "engine said: a\x00b\ud800"
    stored = f"engine said: a{NUL}b{BAD * 3}"
    # The worker's guarded UPDATE (hand-written SQL) prepares values through the fields.
    assert sqltext.prepared(ContainerJob, "last_error", quoted) == stored
    job = advance(make_job(host), JobStatus.FAILED, last_error=quoted, stdout_log=quoted)
    job.refresh_from_db()
    assert (job.last_error, job.stdout_log) == (stored, stored)
    ContainerJob.objects.filter(pk=job.pk).update(
        clean_output=quoted, stderr_log=quoted, stdout_replaced_bytes=3, stderr_replaced_bytes=4
    )
    job.append_event(quoted)
    job.refresh_from_db()
    assert (job.clean_output, job.stderr_log) == (stored, stored)
    assert job.docker_log.endswith(f" {stored}\n")
    job.last_error = quoted
    job.save()
    job.refresh_from_db()
    assert job.last_error == stored
    assert (job.stdout_replaced_bytes, job.stderr_replaced_bytes) == (3, 4)
    job.requeue()  # quotes the last error in docker_log, and clears the results
    job.refresh_from_db()
    assert (job.status, job.stdout_replaced_bytes, job.stderr_replaced_bytes) == (JobStatus.PENDING, 0, 0)


@pytest.mark.django_db
def test_the_worker_stores_the_json_escape_of_nul_a_mock_job_prints(host: ExecutorHost) -> None:
    # The mock plugin hands over str (its environment, hence its output, cannot hold NUL on PostgreSQL).
    job = make_job(
        host, env={"MOCK_STDOUT": 'hello\n{"a": "\\u0000\\ud800"}', "MOCK_STDERR": f"{NUL} is text"}
    )
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.termination_reason) == (JobStatus.COMPLETED, TerminationReason.COMPLETED)
    assert job.clean_output == 'hello\n{"a": "\\u0000\\ud800"}\n'
    assert job.parsed_output == {"a": f"{NUL}{BAD * 3}"}
    assert (job.stdout_replaced_bytes, job.stderr_replaced_bytes) == (0, 0)  # a literal ␀ is not replaced
    assert job.stderr_log == f"{NUL} is text\n"  # as the job wrote it: no engine timestamp
