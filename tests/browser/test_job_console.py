"""The job page as an operator uses it, in a real browser: live output, Cancel, Retry, usage, attempts, no secrets.

Real pieces throughout: chromium, the live server, the worker, the Docker Engine. Each test takes a
few seconds of job time; screenshots of the job page are saved (see conftest.py).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "hunter2"  # noqa: S105 - the value that must never reach the page
TICKER = 'i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'


def queue(host: ExecutorHost, image: str, script: str, name: str) -> ContainerJob:
    return ContainerJob.objects.create_job(
        image,
        script,
        name,
        docker_host=host,
        environment_vars={"DB_PASSWORD": SECRET},
        memory_limit=64,
        pids_limit=32,
        timeout_seconds=120,
    )


def wait_for_status(job: ContainerJob, statuses: set[str], timeout: float = 30) -> ContainerJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in statuses:
            return job
        time.sleep(0.1)
    pytest.fail(f"Job {job.pk} is {job.status!r}, not in {sorted(statuses)} after {timeout} s.")


def job_page(live_server: Any, job: ContainerJob) -> str:
    return f"{live_server.url}/admin/container_manager/containerjob/{job.pk}/change/"


def no_secret_in(tab: Any) -> None:
    assert SECRET not in tab.content()


def tick_count(tab: Any) -> int:
    return len(re.findall(r"tick \d+", tab.inner_text("#cm-tail-stdout")))


def test_watch_a_running_job_print_then_cancel_it(
    page, live_server, worker, docker_host, test_image, screenshot
):
    job = queue(docker_host, test_image, TICKER, "ticker")
    wait_for_status(job, {JobStatus.RUNNING})
    page.goto(job_page(live_server, job))
    assert page.inner_text("#cm-status") == "Running"
    assert re.fullmatch(r"\d+\.\d s", page.inner_text("#cm-elapsed"))

    # Lines arrive in the tail while the job runs, without reloading the page.
    seen = tick_count(page)
    page.wait_for_function(
        f"document.getElementById('cm-tail-stdout').textContent.split('tick').length - 1 >= {seen + 5}"
    )
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING, "the lines must arrive before the job ends"
    no_secret_in(page)
    screenshot(page, "running")

    page.click("#cm-cancel")
    page.wait_for_selector("text=Asked the worker to stop 1 running job(s).")
    # The page follows the job to its end and shows it, then offers Retry instead of Cancel.
    expect(page.locator("#cm-status")).to_have_text("Cancelled")
    expect(page.locator("#cm-retry")).to_be_visible()
    assert page.query_selector("#cm-cancel") is None
    assert page.inner_text("#cm-termination-reason") == "Cancelled"
    assert tick_count(page) >= seen + 5  # the stored output, as the harvest kept it
    assert re.search(r"Ran for\s+\d+\.\d s", page.inner_text("#cm-timestamps"))
    no_secret_in(page)
    screenshot(page, "cancelled")
    job.refresh_from_db()
    assert (job.status, job.stop_reason) == (JobStatus.CANCELLED, "cancelled")


def test_retry_a_failed_job_and_see_its_usage_and_attempts(
    page, live_server, worker, docker_host, test_image, screenshot
):
    # Runs past the first usage sample (2 s) holding 24 MiB, then fails.
    script = "head -c 24m /dev/zero | tail > /dev/null; sleep 2.5; echo 'oops' >&2; exit 3"
    job = wait_for_status(queue(docker_host, test_image, script, "failing"), {JobStatus.FAILED})
    page.goto(job_page(live_server, job))
    assert page.inner_text("#cm-status") == "Failed"
    assert page.inner_text("#cm-exit-code") == "3"
    assert re.fullmatch(r"\d+\.\d MiB", page.inner_text("#cm-peak-memory"))
    assert re.fullmatch(r"\d+\.\d %", page.inner_text("#cm-cpu"))
    [attempt] = page.query_selector_all("tr.cm-attempt")
    assert re.match(r"1\s+browser-docker\s+browser-worker", attempt.inner_text())
    assert "non_zero_exit" in attempt.inner_text()
    assert "oops" in page.inner_text("#cm-tail-stderr")
    with page.expect_download() as download:
        page.click("a.cm-download[data-stream=stderr]")
    assert download.value.suggested_filename == f"job-{job.pk}-stderr.txt"
    assert "oops" in download.value.path().read_text(encoding="utf-8")
    no_secret_in(page)
    screenshot(page, "failed")

    page.click("#cm-retry")
    page.wait_for_selector("text=Re-queued 1 job(s).")
    # The second attempt runs and fails too; the page follows it and reloads at its end.
    expect(page.locator("#cm-status")).to_have_text("Failed", timeout=30_000)
    expect(page.locator("tr.cm-attempt td").first).to_have_text("2")
    no_secret_in(page)
    screenshot(page, "retried")
