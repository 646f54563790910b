"""Logs from Cloud Logging: streams apart, structured lines, timestamps, paging and the cap."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import grpc
import pytest
from cloudrun_executor.logs import format_timestamp, log_filter
from cloudrun_executor.naming import ExecutionName
from cloudrun_executor.plugin import CloudRunExecutor
from proto.datetime_helpers import DatetimeWithNanoseconds

from container_manager_core.errors import ExecutorError
from container_manager_core.logtext import strip_timestamps, truncation_notice
from container_manager_core.types import HostSpec
from tests.cloudrun.conftest import JobMaker, wait_exited
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z ")


def finished_logs(executor: CloudRunExecutor, host: HostSpec, job_maker: JobMaker, **scenario: object) -> str:
    execution = executor.launch_job(host, job_maker(**scenario))
    wait_exited(executor, host, execution.execution_id)
    return execution.execution_id


def test_every_line_arrives_in_order_across_pages(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    lines = [f"line {n}" for n in range(10)]
    execution_id = finished_logs(
        executor, cloudrun_host, make_job, stdout="\n".join(lines), stderr="warn 1\nwarn 2"
    )
    logs = executor.get_logs(cloudrun_host, execution_id, timestamps=False)
    assert logs.stdout == "".join(f"{line}\n" for line in lines)
    assert logs.stderr == "warn 1\nwarn 2\n"
    # The fake serves three entries per page: the plugin had to follow the page tokens.
    assert fake_cloudrun.call_count("ListLogEntries") >= 4


def test_cloud_runs_own_system_entries_are_not_job_output(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    execution_id = finished_logs(executor, cloudrun_host, make_job, stdout="done", exit_code=4)
    logs = executor.get_logs(cloudrun_host, execution_id, timestamps=False)
    assert "Container called exit" not in logs.stdout + logs.stderr
    assert logs.stdout == "done\n"


def test_structured_lines_come_back_as_compact_json_with_whole_numbers(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    line = '{"result": {"rows": 3, "ratio": 0.5, "tags": ["a", 2]}, "ok": true}'
    execution_id = finished_logs(executor, cloudrun_host, make_job, stdout=f"starting\n{line}")
    first, second = executor.get_logs(cloudrun_host, execution_id, timestamps=False).stdout.splitlines()
    assert first == "starting"
    # Logging keeps JSON objects as maps (key order is not kept) with every number a double.
    assert json.loads(second) == {"result": {"rows": 3, "ratio": 0.5, "tags": ["a", 2]}, "ok": True}
    assert " " not in second
    assert "3.0" not in second
    assert "2.0" not in second


def test_timestamps_prefix_each_line_and_strip_back_to_the_text(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    execution_id = finished_logs(executor, cloudrun_host, make_job, stdout="one\ntwo", stderr="three")
    plain = executor.get_logs(cloudrun_host, execution_id, timestamps=False)
    stamped = executor.get_logs(cloudrun_host, execution_id, timestamps=True)
    assert stamped.timestamps
    assert not plain.timestamps
    assert all(STAMP.match(line) for line in (stamped.stdout + stamped.stderr).splitlines())
    assert strip_timestamps(stamped.stdout) == plain.stdout
    assert strip_timestamps(stamped.stderr) == plain.stderr


def test_each_stream_is_capped_keeping_head_and_tail(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, log_cap_bytes=40)
    lines = [f"row {n:02d}" for n in range(20)]  # 7 bytes each with the newline
    execution_id = finished_logs(executor, host, make_job, stdout="\n".join(lines), stderr="short")
    logs = executor.get_logs(host, execution_id, timestamps=False)
    assert logs.stdout_dropped_bytes == 20 * 7 - 40
    assert logs.stdout.startswith("row 00\nrow 01\n")
    assert logs.stdout.endswith("row 18\nrow 19\n")
    assert f"{logs.stdout_dropped_bytes} bytes dropped" in logs.stdout
    assert (logs.stderr, logs.stderr_dropped_bytes) == ("short\n", 0)


def test_output_is_decoded_as_every_executors_is(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    # NUL is replaced and counted; a character the cap splits is dropped whole, not replaced.
    host = cloudrun_host_spec(fake_cloudrun, log_cap_bytes=9)
    execution_id = finished_logs(executor, host, make_job, stdout="a\x00b", stderr="é" * 20)
    logs = executor.get_logs(host, execution_id, timestamps=False)
    assert (logs.stdout, logs.stdout_dropped_bytes, logs.stdout_replaced_bytes) == ("a\u2400b\n", 0, 1)
    # 41 bytes: a head of 5 holds two "é" and half a third, a tail of 4 one "é" and the newline.
    assert logs.stderr == "éé" + truncation_notice(41 - 7) + "é\n"
    assert (logs.stderr_dropped_bytes, logs.stderr_replaced_bytes) == (41 - 7, 0)


def test_logging_errors_are_typed(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution_id = finished_logs(executor, cloudrun_host, make_job, stdout="x")
    fake_cloudrun.fail_next(
        "ListLogEntries", grpc.StatusCode.PERMISSION_DENIED, "No logging.logEntries.list."
    )
    with pytest.raises(ExecutorError, match="Cloud Logging"):
        executor.get_logs(cloudrun_host, execution_id, timestamps=False)


def test_filter_selects_one_executions_entries_received_since_its_creation() -> None:
    name = ExecutionName.parse("projects/p/locations/europe-west1/jobs/cm-a-1/executions/cm-a-1-xyz12")
    assert name is not None
    since = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    assert log_filter("p", name, since) == (
        'resource.type="cloud_run_job" AND resource.labels.job_name="cm-a-1" AND '
        'resource.labels.location="europe-west1" AND '
        'labels."run.googleapis.com/execution_name"="cm-a-1-xyz12" AND '
        'logName=("projects/p/logs/run.googleapis.com%2Fstdout" OR "projects/p/logs/run.googleapis.com%2Fstderr" '
        'OR "projects/p/logs/run.googleapis.com%2Fvarlog%2Fsystem") AND '
        'receiveTimestamp>="2026-03-04T05:06:07.890123000Z"'
    )


def test_timestamps_keep_nanoseconds() -> None:
    moment = DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 5, nanosecond=123456789, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-01-02T03:04:05.123456789Z"
