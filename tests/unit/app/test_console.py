"""The admin console: the job page's times, usage, attempts, tail, downloads and buttons; workers; throughput."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from container_manager.console import reading
from container_manager.console.chart import usage_chart
from container_manager.console.reading import UsageSample
from container_manager.console.throughput import last_hour
from container_manager.console.timing import format_bytes, format_duration
from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ContainerJob
from container_manager.states import JobStatus
from container_manager.workers import WorkerProcess
from tests.factories import TEST_WORKER, advance, make_host, make_job

pytestmark = pytest.mark.django_db

DB_PASSWORD = "Db-Pa55-console-77"  # noqa: S105 - a test-only secret the pages must never show


def url(name: str, *args: object) -> str:
    return reverse(f"admin:container_manager_containerjob_{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def running_on_mock(host, **env: str) -> ContainerJob:
    """A job running on the mock executor for real: launched through the plugin manager, so reads reach it."""
    job = advance(make_job(host=host, environment_vars=env), JobStatus.LAUNCHING)
    execution = get_plugin_manager().launch_job(host.to_spec(), job.to_spec())
    job.mark_running(job.owner(), execution_id=execution.execution_id)
    return job


def finished_with_output(host, status: JobStatus = JobStatus.COMPLETED, **fields) -> ContainerJob:
    job = advance(make_job(host=host), status, **fields)
    ContainerJob.objects.filter(pk=job.pk).update(
        stdout_log="2026-01-01T00:00:00.000000000Z out one\n2026-01-01T00:00:01.000000000Z out two\n",
        stderr_log="2026-01-01T00:00:00.500000000Z err one\n",
    )
    job.refresh_from_db()
    return job


# The job page ------------------------------------------------------------------------------------


def test_a_finished_job_page_shows_exact_times_run_time_usage_attempts_and_retry(admin_client, host):
    job = finished_with_output(host, max_memory_usage=25 * 1024 * 1024, cpu_usage_percent=12.345)
    start = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    ContainerJob.objects.filter(pk=job.pk).update(
        started_at=start, completed_at=start + timedelta(seconds=83, milliseconds=400)
    )
    html = admin_client.get(url("change", job.pk)).content.decode()
    assert '<time datetime="2026-03-01T10:00:05+00:00">2026-03-01 10:00:05 UTC</time>' in html
    assert '<td id="cm-elapsed">83.4 s</td>' in html
    assert '<td id="cm-peak-memory">25.0 MiB</td>' in html and '<td id="cm-cpu">12.3 %</td>' in html
    [attempt] = re.findall(r'<tr class="cm-attempt">(.*?)</tr>', html, re.S)
    assert TEST_WORKER in attempt and host.name in attempt and "completed" in attempt
    assert 'id="cm-retry"' in html and 'id="cm-cancel"' not in html
    assert 'data-finished="true"' in html
    assert "out one" in html and "err one" in html
    assert url("download", job.pk, "stdout") in html


def test_a_running_job_page_reads_the_executor_and_offers_cancel(admin_client, host):
    job = running_on_mock(
        host, MOCK_STDOUT="line 1\nline 2", MOCK_DURATION="60", MOCK_PEAK_MEMORY_BYTES="2048"
    )
    html = admin_client.get(url("change", job.pk)).content.decode()
    assert 'data-finished="false"' in html
    assert 'id="cm-cancel"' in html and 'id="cm-retry"' not in html
    assert '<td id="cm-peak-memory">2.0 KiB</td>' in html
    tail = re.search(r'<pre class="cm-tail" id="cm-tail-stdout">(.*?)</pre>', html, re.S)
    assert tail is not None and "line 1" in tail.group(1) and "line 2" in tail.group(1)
    elapsed = re.search(r'<td id="cm-elapsed">([\d.]+) s</td>', html)
    assert elapsed is not None  # not "-": a running job has run for some time


def test_the_duration_column_shows_a_running_jobs_elapsed_time(admin_client, host):
    job = advance(make_job(host=host, name="busy"), JobStatus.RUNNING)
    ContainerJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=150))
    response = admin_client.get(url("changelist"))
    assert re.search(r"2 min 3\d s", response.content.decode())


def test_the_state_fields_show_seconds_and_the_time_zone(admin_client, host):
    job = advance(make_job(host=host), JobStatus.FAILED)
    ContainerJob.objects.filter(pk=job.pk).update(created_at=datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC))
    html = admin_client.get(url("change", job.pk)).content.decode()
    assert '<div class="readonly">2026-05-04 03:02:01 UTC</div>' in html


def test_the_page_draws_a_chart_when_samples_exist(admin_client, host, monkeypatch):
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    html = admin_client.get(url("change", job.pk)).content.decode()
    assert "cm-usage-chart" not in html  # one stored figure: no chart
    t0 = timezone.now()
    samples = [UsageSample(t0 + timedelta(seconds=i), (i + 1) * 1024 * 1024, 10.0 * i) for i in range(4)]
    monkeypatch.setattr(reading, "usage_samples", lambda _job: samples)
    html = admin_client.get(url("change", job.pk)).content.decode()
    assert '<svg class="cm-usage-chart"' in html
    assert 'class="cm-chart-memory"' in html and 'class="cm-chart-cpu"' in html


def test_no_secret_on_the_console(admin_client, host):
    running = running_on_mock(host, DB_PASSWORD=DB_PASSWORD, MOCK_DURATION="60")
    done = advance(make_job(host=host, environment_vars={"DB_PASSWORD": DB_PASSWORD}), JobStatus.FAILED)
    for address in (
        url("change", running.pk),
        url("change", done.pk),
        url("tail", running.pk),
        url("workers"),
        url("queue_summary"),
    ):
        response = admin_client.get(address)
        assert response.status_code == 200, address
        assert DB_PASSWORD not in response.content.decode(), address


# Buttons -----------------------------------------------------------------------------------------


def test_the_cancel_button_says_what_the_list_action_says(admin_client, host):
    job = advance(make_job(host=host), JobStatus.RUNNING)
    response = admin_client.post(url("cancel", job.pk), follow=True)
    assert response.redirect_chain == [(url("change", job.pk), 302)]
    assert messages_of(response) == ["Asked the worker to stop 1 running job(s)."]
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is not None
    queued = make_job(host=host)
    response = admin_client.post(url("cancel", queued.pk), follow=True)
    assert messages_of(response) == ["Cancelled 1 queued job(s)."]
    response = admin_client.post(url("cancel", queued.pk), follow=True)
    assert messages_of(response) == ["test-job: already cancelled."]


def test_the_retry_button_requeues_a_finished_job_and_refuses_a_running_one(admin_client, host):
    failed = advance(make_job(host=host, name="failed"), JobStatus.FAILED)
    response = admin_client.post(url("retry", failed.pk), follow=True)
    assert messages_of(response) == ["Re-queued 1 job(s)."]
    failed.refresh_from_db()
    assert failed.status == JobStatus.PENDING
    busy = advance(make_job(host=host, name="busy"), JobStatus.RUNNING)
    response = admin_client.post(url("retry", busy.pk), follow=True)
    assert messages_of(response) == ["busy: only a finished job can be retried."]


def test_the_buttons_take_post_only(admin_client, host):
    job = advance(make_job(host=host), JobStatus.RUNNING)
    assert admin_client.get(url("cancel", job.pk)).status_code == 405
    assert admin_client.get(url("retry", job.pk)).status_code == 405
    job.refresh_from_db()
    assert job.cancel_requested_at is None


def test_the_buttons_check_the_csrf_token(client, admin_user, host):
    job = advance(make_job(host=host), JobStatus.RUNNING)
    client.handler.enforce_csrf_checks = True
    client.force_login(admin_user)
    assert client.post(url("cancel", job.pk)).status_code == 403
    job.refresh_from_db()
    assert job.cancel_requested_at is None


def test_a_viewer_sees_the_console_without_buttons_and_cannot_post(client, host):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)  # noqa: S106
    viewer.user_permissions.add(Permission.objects.get(codename="view_containerjob"))
    client.force_login(viewer)
    job = advance(make_job(host=host), JobStatus.RUNNING)
    html = client.get(url("change", job.pk)).content.decode()
    assert 'id="cm-console"' in html and 'id="cm-cancel"' not in html
    assert client.post(url("cancel", job.pk)).status_code == 403
    job.refresh_from_db()
    assert job.cancel_requested_at is None


# The tail endpoint and downloads -----------------------------------------------------------------


def test_the_tail_returns_what_follows_each_offset(admin_client, host):
    job = finished_with_output(host)
    first = admin_client.get(url("tail", job.pk)).json()
    assert first["finished"] is True and first["status"] == "completed"
    stdout = first["streams"]["stdout"]
    assert stdout["text"] == job.stdout_log and stdout["offset"] == len(job.stdout_log)
    assert not stdout["reset"]
    half = len(job.stdout_log) // 2
    later = admin_client.get(url("tail", job.pk) + f"?stdout={half}&stderr={len(job.stderr_log)}").json()
    assert later["streams"]["stdout"]["text"] == job.stdout_log[half:]
    assert later["streams"]["stderr"]["text"] == ""


def test_the_tail_of_a_running_job_is_read_live(admin_client, host):
    job = running_on_mock(host, MOCK_STDOUT="live line", MOCK_STDERR="live err", MOCK_DURATION="60")
    data = admin_client.get(url("tail", job.pk)).json()
    assert data["live"] is True and data["finished"] is False
    assert data["streams"]["stdout"]["text"].endswith(" live line\n")
    assert data["streams"]["stderr"]["text"].endswith(" live err\n")
    assert data["elapsed"] != "-"


def test_the_tail_refuses_a_bad_offset_and_an_unknown_job(admin_client, host):
    job = finished_with_output(host)
    response = admin_client.get(url("tail", job.pk) + "?stdout=-3")
    assert response.status_code == 400
    assert response.json() == {
        "error": "The stdout offset must be a whole number (the offset a previous answer gave), got '-3'."
    }
    assert admin_client.get(url("tail", "not-a-uuid")).status_code == 404
    assert admin_client.get(url("tail", "00000000-0000-0000-0000-000000000000")).status_code == 404


def test_log_since_starts_again_when_the_log_was_replaced_and_keeps_within_the_limit(host):
    job = finished_with_output(host)
    beyond = reading.log_since(job, {"stdout": 10_000}).streams["stdout"]
    assert beyond.reset and beyond.text == job.stdout_log
    capped = reading.log_since(job, {}, limit=10).streams["stdout"]
    assert capped.text == job.stdout_log[-10:] and capped.skipped == len(job.stdout_log) - 10
    whole = reading.log_since(job, {}, limit=None).streams["stdout"]
    assert whole.text == job.stdout_log and whole.skipped == 0


def test_a_stream_downloads_as_a_text_file(admin_client, host):
    job = finished_with_output(host)
    response = admin_client.get(url("download", job.pk, "stderr"))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}-stderr.txt"'
    assert response.content.decode() == job.stderr_log
    assert admin_client.get(url("download", job.pk, "stdin")).status_code == 404


# Workers, filters, throughput ---------------------------------------------------------------------


def test_the_workers_page_lists_workers_by_heartbeat_with_the_jobs_they_hold(admin_client, db):
    one, two = make_host("one"), make_host("two")
    beat = {"hostname": "box-1", "pid": 11, "host_names": (), "running": 3}
    WorkerProcess.beat(TEST_WORKER, concurrency=4, **beat)
    WorkerProcess.beat("idle", concurrency=2, **beat)  # beats, holds nothing: listed
    WorkerProcess.beat("gone", concurrency=2, **beat)
    WorkerProcess.stopped("gone")  # stopped cleanly: not listed
    for host in (one, one, two):
        advance(make_job(host=host), JobStatus.RUNNING)
    other = advance(make_job(host=two), JobStatus.LAUNCHING)
    # w-2 never beat (or was killed long ago) but is still named on a job: listed, lost.
    ContainerJob.objects.filter(pk=other.pk).update(
        worker_id="w-2", lease_expires_at=timezone.now() - timedelta(seconds=5)
    )
    advance(make_job(host=one), JobStatus.COMPLETED)  # finished: holds nothing
    response = admin_client.get(url("workers"))
    rows = {row.worker_id: row for row in response.context["workers"]}
    assert set(rows) == {TEST_WORKER, "idle", "w-2"}
    mine = rows[TEST_WORKER]
    assert (mine.running, mine.launching, mine.hosts, mine.concurrency) == (3, 0, "one, two", 4)
    assert not mine.lost and mine.heartbeat_age_seconds is not None and mine.machine == "box-1 (pid 11)"
    assert (rows["idle"].running, rows["idle"].lost) == (0, False)
    assert (rows["w-2"].running, rows["w-2"].launching, rows["w-2"].lost) == (0, 1, True)
    html = response.content.decode()
    assert "(lost)" in html and "?worker=w-2" in html


def test_the_job_list_filters_by_termination_reason_and_worker(admin_client, host):
    advance(make_job(host=host, name="ok"), JobStatus.COMPLETED)
    advance(make_job(host=host, name="bad"), JobStatus.FAILED)
    elsewhere = advance(make_job(host=host, name="elsewhere"), JobStatus.RUNNING)
    ContainerJob.objects.filter(pk=elsewhere.pk).update(worker_id="other-worker")

    def names(query: str) -> set[str]:
        response = admin_client.get(url("changelist") + query)
        assert response.status_code == 200, query
        return {job.name for job in response.context["cl"].result_list}

    assert names("?termination_reason__exact=non_zero_exit") == {"bad"}
    assert names("?termination_reason__exact=completed") == {"ok"}
    assert names("?worker=other-worker") == {"elsewhere"}
    assert names(f"?worker={TEST_WORKER}") == {"ok", "bad"}


def test_the_queue_summary_counts_the_last_hours_throughput_and_failure_rate(admin_client, host):
    for status in (JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.FAILED):
        advance(make_job(host=host), status)
    advance(make_job(host=host), JobStatus.TIMEOUT)
    advance(make_job(host=host), JobStatus.CANCELLED)
    old = advance(make_job(host=host), JobStatus.FAILED)
    ContainerJob.objects.filter(pk=old.pk).update(completed_at=timezone.now() - timedelta(hours=2))
    hour = last_hour()
    assert hour.by_status == {"completed": 3, "failed": 1, "timeout": 1, "cancelled": 1}
    assert (hour.finished, hour.ran, hour.failed, hour.failure_rate) == (6, 5, 2, 0.4)
    html = admin_client.get(url("queue_summary")).content.decode()
    assert '<td class="cm-finished">6</td>' in html
    assert '<td class="cm-failure-rate">40 % (2 / 5)</td>' in html


def test_no_failure_rate_without_jobs_that_ran(db):
    assert last_hour().failure_rate is None


# Formatting --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.04, "0.0 s"), (119.96, "120.0 s"), (125, "2 min 5 s"), (7199, "119 min 59 s"), (7500, "2 h 5 min")],
)
def test_durations(seconds, shown):
    assert format_duration(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(
    ("count", "shown"), [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB")]
)
def test_byte_counts(count, shown):
    assert format_bytes(count) == shown


def test_the_chart_needs_two_samples_and_scales_each_line_to_its_peak():
    t0 = timezone.now()
    assert usage_chart([UsageSample(t0, 10, 1.0)]) == ""
    svg = str(usage_chart([UsageSample(t0, 0, None), UsageSample(t0 + timedelta(seconds=10), 100, None)]))
    assert 'class="cm-chart-memory"' in svg and "cm-chart-cpu" not in svg  # one CPU figure: no line
    [points] = re.findall(r'class="cm-chart-memory"[^>]*points="([^"]+)"', svg)
    assert points == "4.0,76.0 316.0,4.0"  # from the bottom left to the top right
    assert json.dumps(svg)  # plain text, embeddable as is
