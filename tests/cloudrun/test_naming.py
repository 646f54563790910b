"""Job names and labels derived from job ids, and execution ids read back."""

from __future__ import annotations

import re

import pytest
from cloudrun_executor.naming import (
    MAX_JOB_NAME_LENGTH,
    ExecutionName,
    is_label_key,
    is_label_value,
    job_name,
)
from cloudrun_executor.translate import cloudrun_labels

from tests.cloudrun.conftest import make_scenario_job

pytestmark = pytest.mark.cloudrun

CLOUD_RUN_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "job_id",
    [
        "42",
        "Job_Report.2026-03",
        "ÉTÉ rapport",
        "-leading-and-trailing-",
        "x" * 300,
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_job_names_are_valid_short_and_deterministic(job_id: str) -> None:
    name = job_name("cm", job_id)
    assert CLOUD_RUN_NAME.match(name), name
    assert len(name) <= MAX_JOB_NAME_LENGTH
    assert name.startswith("cm-")
    assert job_name("cm", job_id) == name


def test_ids_that_read_alike_get_different_names() -> None:
    assert job_name("cm", "Report-1") != job_name("cm", "report_1")
    assert job_name("cm", "a" * 100 + "1") != job_name("cm", "a" * 100 + "2")


def test_the_readable_part_shows_the_id() -> None:
    assert job_name("cm", "Nightly Report 7").startswith("cm-nightly-report-7-")


def test_execution_names_parse_and_belong_by_region_and_prefix() -> None:
    name = ExecutionName.parse("projects/123456/locations/europe-west1/jobs/cm-a-1/executions/cm-a-1-xyz12")
    assert name == ExecutionName("123456", "europe-west1", "cm-a-1", "cm-a-1-xyz12")
    assert name.job_path == "projects/123456/locations/europe-west1/jobs/cm-a-1"
    # Cloud Run may answer with the project number: the project part is not compared.
    assert name.belongs_to("europe-west1", "cm")
    assert not name.belongs_to("us-central1", "cm")
    assert not name.belongs_to("europe-west1", "c")
    assert ExecutionName.parse("no-such-execution") is None


def test_job_labels_follow_cloud_run_rules_and_cannot_replace_ours() -> None:
    job = make_scenario_job(
        job_id="Mixed Case/ID",
        labels={
            "Team.Name": "Data Science",
            "9lives": "yes",
            "managed-by": "someone-else",
            "run.googleapis.com/x": "y",
        },
    )
    labels = cloudrun_labels(job, "deploy-1")
    assert labels["managed-by"] == "container-manager"
    assert labels["cm-owner"] == "deploy-1"
    assert labels["cm-job-id"] == "mixed_case_id"
    assert labels["team_name"] == "data_science"
    assert labels["l-9lives"] == "yes"
    assert all(is_label_key(k) and is_label_value(v) for k, v in labels.items())
