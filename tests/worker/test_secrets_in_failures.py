"""A job that fails for its own data never has a value quoted: not in last_error, its events or a log line.

The rows are stored behind ``create_job``'s back (as an older release or a raw SQL fix would), and
the real worker claims them: the malformed line, the command, the values stay out of what it writes.
"""

from __future__ import annotations

import logging

import pytest
from django.core.management import call_command

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus
from tests.worker.conftest import make_job

TEMPLATE_SECRET = "ghp_" + "Wq4" * 12
COMMAND_SECRET = "cmd-Pw-5521"  # noqa: S105 - a test-only value to search for


@pytest.mark.django_db
def test_the_worker_quotes_no_value_of_a_job_it_cannot_launch(
    host: ExecutorHost, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="container_manager")
    broken = EnvironmentVariableTemplate.objects.create(
        name="broken", environment_variables_text=f"MODE=x\nGITHUB_PAT {TEMPLATE_SECRET}\n"
    )
    by_template = make_job(host, name="broken template")
    ContainerJob.objects.filter(pk=by_template.pk).update(environment_template=broken)
    by_command = make_job(host, name="broken command")
    ContainerJob.objects.filter(pk=by_command.pk).update(
        command_form="exec", command=f'{{"psql": "postgres://app:{COMMAND_SECRET}@db/app"}}'
    )

    call_command("process_container_jobs", once=True)

    for job, says in [(by_template, "Line 2: there is no '='"), (by_command, "JSON list of strings")]:
        job.refresh_from_db()
        assert (job.status, job.termination_reason) == (JobStatus.FAILED, "invalid_spec")
        assert says in job.last_error
        for text in (job.last_error, job.docker_log):
            assert TEMPLATE_SECRET not in text and COMMAND_SECRET not in text
    launch_failed = [r.getMessage() for r in caplog.records if "event=launch_failed" in r.getMessage()]
    assert len(launch_failed) == 2
    for record in caplog.records:
        assert TEMPLATE_SECRET not in record.getMessage() and COMMAND_SECRET not in record.getMessage()
