"""ContainerJob.objects.create_job: defaults, validation, the policy gate, and the documented snippet."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus
from container_manager_core.types import Command, CommandForm
from tests.factories import make_host, make_job, make_template

pytestmark = pytest.mark.django_db


def test_the_documented_snippet_runs_verbatim_against_the_mock_executor(settings):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock"}

    from container_manager.models import ContainerJob, EnvironmentVariableTemplate

    EnvironmentVariableTemplate.objects.create(
        name="python-development", environment_variables_text="PYTHONUNBUFFERED=1\nDEBUG=true\n"
    )
    host = ExecutorHost.objects.create(name="local-docker", executor_type="mock", host_type="unix",
        connection_string="unix:///var/run/docker.sock", max_concurrent_jobs=5, weight=100, is_active=True)  # fmt: skip
    job = ContainerJob.objects.create_job(image="python:3.11-slim", command="python -c 'print(1)'", name="hello",
        environment_template="python-development", environment_vars={"DEBUG": "false"},
        memory_limit=256, cpu_limit=1.0, timeout_seconds=300, working_directory="/app",
        network_configuration=[{"network_name": "app-network", "aliases": ["api"]}])  # fmt: skip
    from container_manager.executors.factory import ExecutorFactory

    executor = ExecutorFactory.create_executor("mock", {"docker_host": host})
    health = executor.get_health_status()

    assert health["healthy"] is True
    assert isinstance(health["response_time"], float)
    assert health["error"] is None
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.get_all_environment_variables() == {"PYTHONUNBUFFERED": "1", "DEBUG": "false"}
    assert job.get_network_names() == ["app-network"]
    assert (job.memory_limit, job.cpu_limit, job.timeout_seconds, job.pids_limit) == (256, 1.0, 300, 256)
    assert job.executor_type == "mock"
    execution_id = executor.launch_job(job)
    assert executor.check_status(execution_id) == "exited"


def test_left_out_limits_and_user_come_from_the_settings(settings, host):
    settings.CONTAINER_MANAGER = {
        "DEFAULT_MEMORY_LIMIT_MB": 128,
        "DEFAULT_CPU_LIMIT": 0.5,
        "DEFAULT_TIMEOUT_SECONDS": 60,
        "DEFAULT_PIDS_LIMIT": 64,
        "DEFAULT_USER": "2000:2000",
    }
    job = ContainerJob.objects.create_job("busybox:latest", "true", docker_host=host)
    assert (job.memory_limit, job.cpu_limit, job.timeout_seconds, job.pids_limit) == (128, 0.5, 60, 64)
    assert job.user == "2000:2000"


def test_a_list_command_is_stored_in_exec_form(host):
    job = make_job(host=host, command=["python", "-c", "print('a b')"])
    job.refresh_from_db()
    assert job.command_form == CommandForm.EXEC
    assert json.loads(job.command) == ["python", "-c", "print('a b')"]
    assert job.get_command() == Command.exec("python", "-c", "print('a b')")
    assert Command.exec("python", "-c", "print('a b')").argv == ["python", "-c", "print('a b')"]
    assert job.to_spec().command == job.get_command()


def test_a_string_command_is_shell_form(host):
    job = make_job(host=host, command="echo $HOME && true")
    assert job.get_command() == Command.shell("echo $HOME && true")
    assert job.to_spec().command == job.get_command()
    assert Command.shell("echo $HOME && true").argv == ["/bin/sh", "-c", "echo $HOME && true"]


def test_the_host_may_be_given_by_name_and_sets_the_executor_type(host):
    job = ContainerJob.objects.create_job("busybox:latest", "true", docker_host="mock-1")
    assert job.docker_host == host
    assert job.executor_type == "mock"


def test_an_unknown_template_name_is_a_clear_error(host):
    with pytest.raises(ValidationError) as info:
        make_job(host=host, environment_template="nope")
    assert info.value.message_dict == {
        "environment_template": ["No environment template named 'nope'; create it first."]
    }
    assert ContainerJob.objects.count() == 0


def test_an_unknown_host_name_is_a_clear_error(db):
    with pytest.raises(ValidationError, match="No executor host named 'ghost'"):
        ContainerJob.objects.create_job("busybox:latest", "true", docker_host="ghost")


def test_template_instances_are_accepted_and_overrides_win(host):
    template = make_template("web", "A=from-template\nB=kept\n")
    job = make_job(host=host, environment_template=template, environment_vars={"A": "override", "C": "new"})
    assert job.get_all_environment_variables() == {"A": "override", "B": "kept", "C": "new"}
    assert job.to_spec().env == {"A": "override", "B": "kept", "C": "new"}


FORBIDDEN = {
    "memory_limit": 99_999,
    "cpu_limit": 64.0,
    "timeout_seconds": 86_400,
    "pids_limit": 100_000,
    "user": "0:0",
    "network_configuration": [{"network_name": "host", "aliases": []}],
}
FORBIDDEN_CODES = {
    "memory_limit_too_high",
    "cpu_limit_too_high",
    "timeout_too_high",
    "pids_limit_too_high",
    "user_uid_too_low",
    "user_gid_root",
    "host_network",
}


def test_every_forbidden_setting_is_rejected_at_once_nothing_saved_and_logged(host, caplog):
    before = ContainerJob.objects.count()
    caplog.set_level(logging.WARNING, logger="container_manager.security")

    with pytest.raises(ValidationError) as info:
        make_job(host=host, environment_vars={"API_TOKEN": "tok-very-secret-value"}, **FORBIDDEN)

    codes = {error.code for errors in info.value.error_dict.values() for error in errors}
    assert codes == FORBIDDEN_CODES
    assert len(info.value.messages) == len(FORBIDDEN_CODES)
    assert "memory_limit_mb is 99999, above the maximum of 2048" in " ".join(
        info.value.message_dict["memory_limit"]
    )
    assert ContainerJob.objects.count() == before
    [record] = [r for r in caplog.records if r.name == "container_manager.security"]
    assert record.levelno == logging.WARNING
    assert set(record.violation_codes) == FORBIDDEN_CODES
    text = record.getMessage()
    assert all(code in text for code in FORBIDDEN_CODES)
    assert "tok-very-secret-value" not in text and "API_TOKEN" not in text


def test_a_registry_outside_the_allow_list_is_rejected(settings, host):
    settings.CONTAINER_MANAGER = {"ALLOWED_REGISTRIES": ["registry.example.com"]}
    with pytest.raises(ValidationError) as info:
        make_job(host=host, image="docker.io/library/python:3.12")
    assert [e.code for e in info.value.error_dict["docker_image"]] == ["image_registry_not_allowed"]
    make_job(host=host, image="registry.example.com/team/app:1")


def test_full_clean_runs_the_same_policy_check(host):
    job = make_job(host=host)
    job.memory_limit = 1_000_000
    with pytest.raises(ValidationError) as info:
        job.full_clean()
    assert [e.code for e in info.value.error_dict["memory_limit"]] == ["memory_limit_too_high"]


def test_a_job_without_limits_breaks_the_policy(host):
    job = make_job(host=host)
    job.memory_limit = None
    job.cpu_limit = None
    with pytest.raises(ValidationError) as info:
        job.full_clean()
    codes = {e.code for errors in info.value.error_dict.values() for e in errors}
    assert codes == {"memory_limit_missing", "cpu_limit_missing"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"is_active": False}, "inactive"),
        ({"healthy": False, "last_health_error": "connection refused"}, "unhealthy: connection refused"),
        ({"healthy": False}, "unhealthy"),
    ],
)
def test_a_job_for_an_unavailable_host_is_rejected(db, fields, reason):
    host = make_host("sick", **fields)
    with pytest.raises(ValidationError) as info:
        make_job(host=host)
    assert info.value.message_dict["docker_host"] == [
        f"Host 'sick' is unavailable ({reason}): do not queue jobs on an unavailable daemon."
    ]
    assert ContainerJob.objects.count() == 0


@pytest.mark.parametrize(
    ("network_configuration", "message"),
    [
        ({"network_name": "x"}, "must be a list of objects"),
        (["app-network"], "must be an object with 'network_name' and 'aliases'"),
        ([{"aliases": ["api"]}], "needs a non-empty string 'network_name'"),
        ([{"network_name": "app", "aliases": "api"}], "needs 'aliases' to be a list of non-empty strings"),
        ([{"network_name": "app", "alias": ["api"]}], "unknown keys ['alias']"),
    ],
)
def test_network_configuration_entries_are_validated(host, network_configuration, message):
    with pytest.raises(ValidationError) as info:
        make_job(host=host, network_configuration=network_configuration)
    assert message in " ".join(info.value.message_dict["network_configuration"])


def test_structural_errors_are_reported_per_field(host):
    with pytest.raises(ValidationError) as info:
        make_job(host=host, working_directory="app", environment_vars={"1BAD": "x", "OK": 3})
    errors = info.value.message_dict
    assert errors["working_directory"] == ["The working directory must be an absolute path, got 'app'."]
    assert errors["environment_overrides"] == [
        "Environment variable name '1BAD' must be letters, digits and '_', not starting with a digit.",
        "Environment variable 'OK' must have a string value, got int.",
    ]


@pytest.mark.parametrize("command", [[], ["ok", 3], 42])
def test_a_malformed_command_is_rejected(host, command):
    with pytest.raises(ValidationError) as info:
        make_job(host=host, command=command)
    assert "command" in info.value.message_dict


def test_an_executor_type_that_does_not_match_the_host_is_rejected(host):
    with pytest.raises(ValidationError) as info:
        make_job(host=host, executor_type="cloudrun")
    assert (
        "does not match host 'mock-1', which is a 'mock' host" in info.value.message_dict["executor_type"][0]
    )


def test_an_executor_type_without_a_plugin_is_rejected_with_the_install_hint(db):
    with pytest.raises(ValidationError) as info:
        ContainerJob.objects.create_job("busybox:latest", "true", executor_type="kubernetes")
    assert "No executor plugin for 'kubernetes'" in info.value.message_dict["executor_type"][0]


def test_lifecycle_fields_cannot_be_passed(host):
    with pytest.raises(TypeError, match=r"cannot set \['status'\]"):
        make_job(host=host, status=JobStatus.RUNNING)


def test_other_model_fields_pass_through(host):
    job = make_job(host=host, priority=5, max_retries=2)
    assert (job.priority, job.max_retries) == (5, 2)


def test_a_broken_template_is_reported_on_the_job(host):
    template = EnvironmentVariableTemplate.objects.create(
        name="broken", environment_variables_text="OK=1\nnot a var\n"
    )
    with pytest.raises(ValidationError) as info:
        make_job(host=host, environment_template=template)
    assert "Line 2" in info.value.message_dict["environment_template"][0]


def test_non_field_errors_hold_violations_of_settings_the_user_cannot_edit(settings, host):
    settings.CONTAINER_MANAGER = {"DEFAULT_NETWORK_MODE": "host"}
    with pytest.raises(ValidationError) as info:
        make_job(host=host)
    assert [e.code for e in info.value.error_dict[NON_FIELD_ERRORS]] == ["host_network"]


def test_repr_shows_no_environment(host):
    job = make_job(host=host, environment_vars={"DB_PASSWORD": "hunter2-db"})
    assert "hunter2-db" not in repr(job)
    assert repr(job).startswith("<ContainerJob ")
