"""The issue 15 audit's findings, each refused at every door with the same clear message, and with
no container ever created for a refused job.

The doors: ``create_job``; the admin's add forms, posted as a browser would (Django's test client);
and the worker, with the real Docker executor, for rows and hosts changed behind ``create_job``'s
back. Creates are counted from the engine's own event stream, for an owner id of this run alone,
so whatever path a create took, it is seen.

Already covered elsewhere, and not repeated here: the worker door for most job findings
(test_refused_jobs.py), the same verdict from ``ContainerJobForm`` and the guard
(tests/unit/app/test_one_verdict.py), and the guard's reading of every dangerous create body
(tests/unit/plugins/test_docker_payload.py).
"""

from __future__ import annotations

import html
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker
import pytest
from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from docker_executor import plugin as docker_plugin
from docker_executor.payload import CreatePayload, build_create_payload

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from tests.dockertools import RUN_ID

pytestmark = [pytest.mark.docker, pytest.mark.django_db]

SOCKET = "unix:///var/run/docker.sock"
HEX = "a" * 64
LIBRARY_ONLY = {"allowed_registries": ["docker.io/library"]}
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Finding:
    """A refused input: ``job`` are create_job arguments, ``host`` a host's executor_config."""

    code: str
    job: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)


# The audit's findings that a job or a host can carry. (The two that only an engine request can
# carry, an inline seccomp profile and a tmpfs over a system path, are tested at the worker below.)
JOB_FINDINGS = {
    "cpu 1e-6": Finding("cpu_limit_too_low", {"cpu_limit": 1e-6}),
    "user 00": Finding("user_uid_too_low", {"user": "00"}),
    "user 0000:0000": Finding("user_uid_too_low", {"user": "0000:0000"}),
    "short image id under an allow-list": Finding(
        "image_id_not_allowed", {"image": "5089cb476207"}, LIBRARY_ONLY
    ),
    "sha256 digest under an allow-list": Finding(
        "image_id_not_allowed", {"image": f"sha256:{HEX}"}, LIBRARY_ONLY
    ),
    "max_retries 1e9": Finding("max_retries_too_high", {"max_retries": 1_000_000_000}),
    "200 KB env value": Finding("env_var_too_large", {"environment_vars": {"BIG": "x" * 200_000}}),
    "300 KB command": Finding("command_too_large", {"command": "echo " + "x" * 300_000}),
}
HOST_FINDINGS = {
    "default_network container:<id>": Finding("shared_network_namespace", host={"default_network": "container:victim"}),
    "default_network host": Finding("host_network", host={"default_network": "host"}),
    "unknown key timout": Finding("docker_config_unknown_key", host={"timout": 5}),
    "unknown key privileged": Finding("docker_config_unknown_key", host={"privileged": True}),
    "unknown key cap_add": Finding("docker_config_unknown_key", host={"cap_add": ["SYS_ADMIN"]}),
    "log_max_size 1000000g": Finding("log_limits_invalid", host={"log_max_size": "1000000g"}),
    "use_init false": Finding("init_disabled", host={"use_init": False}),
}  # fmt: skip
# A UID alone was run in group 0; now it is accepted only because the engine gets UID:UID.
UID_ALONE = ("1001", "00001001", "65534")


@pytest.fixture(autouse=True)
def owner(settings: Any) -> str:
    """Return an owner id of this test alone: the label on every container its jobs could create."""
    owner = f"audit-{RUN_ID}-{next(_numbers)}"
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "MANAGER_ID": owner,
        "POLL_INTERVAL": 0.05,
        "HEALTH_CHECK_INTERVAL": 60,
        "RECONCILE_INTERVAL": 600,
        "STOP_GRACE_SECONDS": 1,
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return owner


@pytest.fixture
def engine_creates(docker_client: docker.DockerClient, owner: str) -> Callable[[], int]:
    """Return a counter of the engine's container creates for this test's owner, from its events."""
    since = int(time.time()) - 1  # whole seconds; the owner, not the time, keeps other tests out

    def count() -> int:
        filters = {"type": "container", "event": "create", "label": f"container_manager.owner={owner}"}
        events = docker_client.api.events(
            since=since, until=int(time.time()) + 2, filters=filters, decode=True
        )
        try:
            return sum(1 for _ in events)
        finally:
            events.close()

    return count


def make_host(config: dict[str, Any]) -> ExecutorHost:
    """Save a host the doors accept, with jobs kept off every network."""
    host = ExecutorHost(
        name=f"audit-{next(_numbers)}",
        executor_type="docker",
        host_type="unix",
        connection_string=SOCKET,
        executor_config={"default_network": "none", **config},
    )
    host.full_clean()
    host.save()
    return host


def create_job_refusal(host: ExecutorHost, image: str, job: dict[str, Any]) -> dict[str, str]:
    """Return ``{code: message}`` of create_job's refusal; fail the test if it accepts."""
    arguments = {"image": image, "command": "true", **job}
    with pytest.raises(ValidationError) as raised:
        ContainerJob.objects.create_job(
            arguments.pop("image"), arguments.pop("command"), docker_host=host, **arguments
        )
    return {str(e.code): e.messages[0] for errors in raised.value.error_dict.values() for e in errors}


def url(name: str) -> str:
    return reverse(f"admin:container_manager_{name}")


def add_form(client: Client, name: str) -> dict[str, str]:
    """Return the POST data a browser sends for the admin's empty add form, unchanged."""
    form = client.get(url(f"{name}_add")).context["adminform"].form
    data: dict[str, str] = {}
    for key, form_field in form.fields.items():
        value = form[key].value()
        if isinstance(form_field, forms.BooleanField):
            if value:
                data[key] = "on"
        elif isinstance(form_field.widget, AdminSplitDateTime):
            data[f"{key}_0"] = data[f"{key}_1"] = ""
        elif isinstance(form_field, forms.MultipleChoiceField):
            continue  # nothing ticked: a browser sends no value at all
        else:
            data[key] = "" if value is None else str(value)
    return data


def job_form_data(client: Client, host: ExecutorHost, image: str, job: dict[str, Any]) -> dict[str, str]:
    data = add_form(client, "containerjob")
    data.update(name="from-admin", docker_image=image, command="true", docker_host=str(host.pk))
    for key, value in job.items():
        if key == "environment_vars":
            # The admin takes environment values write-only, as NAME=value lines.
            data["environment_overrides"] = "\n".join(f"{name}={text}" for name, text in value.items())
        elif key == "image":
            data["docker_image"] = value
        else:
            data[key] = str(value)
    return data


def refused_on_page(page: str, messages: dict[str, str]) -> None:
    for code, message in messages.items():
        assert html.escape(message) in page, f"the admin does not show [{code}] {message[:120]}"


# Jobs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(JOB_FINDINGS))
def test_a_job_finding_is_refused_alike_by_create_job_and_the_admin(
    name: str, admin_client: Client, test_image: str
) -> None:
    finding = JOB_FINDINGS[name]
    host = make_host(finding.host)
    refused = create_job_refusal(host, test_image, finding.job)
    assert finding.code in refused
    assert "x" * 100 not in refused[finding.code]  # sizes are named, values never quoted
    response = admin_client.post(
        url("containerjob_add"), job_form_data(admin_client, host, test_image, finding.job)
    )
    assert response.status_code == 200, "the admin saved a refused job"
    refused_on_page(response.content.decode(), refused)
    assert not ContainerJob.objects.exists()


@pytest.mark.parametrize("user", UID_ALONE)
def test_a_uid_alone_is_accepted_by_every_door_and_reaches_the_engine_with_its_own_group(
    user: str, admin_client: Client, test_image: str
) -> None:
    host = make_host({})
    queued = ContainerJob.objects.create_job(test_image, "true", docker_host=host, user=user)
    response = admin_client.post(
        url("containerjob_add"), job_form_data(admin_client, host, test_image, {"user": user})
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    from_admin = ContainerJob.objects.get(name="from-admin")
    for job in (queued, from_admin):
        payload = build_create_payload(host.to_spec(), job.to_spec(), "1.41")
        assert payload.config["User"] == f"{int(user)}:{int(user)}"


def test_a_row_with_uid_00_changed_behind_create_jobs_back_fails_with_no_create(
    test_image: str, cleanup: None, engine_creates: Callable[[], int]
) -> None:
    host = make_host({})
    job = ContainerJob.objects.create_job(test_image, "true", docker_host=host)
    ContainerJob.objects.filter(pk=job.pk).update(user="00")
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.termination_reason) == (JobStatus.FAILED, TerminationReason.LAUNCH_FAILED)
    assert "[user_uid_too_low]" in job.last_error and "[user_gid_root]" in job.last_error
    assert engine_creates() == 0


# Hosts ------------------------------------------------------------------------------------------


def full_clean_refusal(config: dict[str, Any], name: str = "from-admin") -> dict[str, str]:
    """Return ``{code: message}`` of full_clean()'s refusal of a host named ``name``."""
    host = ExecutorHost(name=name, executor_type="docker", connection_string=SOCKET, executor_config=config)
    with pytest.raises(ValidationError) as raised:
        host.full_clean()
    return {str(e.code): e.messages[0] for errors in raised.value.error_dict.values() for e in errors}


@pytest.mark.parametrize("name", sorted(HOST_FINDINGS))
def test_a_host_finding_is_refused_alike_by_full_clean_create_job_and_the_admin(
    name: str, admin_client: Client, test_image: str
) -> None:
    finding = HOST_FINDINGS[name]
    refused = full_clean_refusal(finding.host)
    assert set(refused) == {finding.code}
    data = add_form(admin_client, "executorhost")
    data.update(name="from-admin", executor_type="docker", connection_string=SOCKET)
    data["executor_config"] = json.dumps(finding.host)
    response = admin_client.post(url("executorhost_add"), data)
    assert response.status_code == 200, "the admin saved a refused host"
    refused_on_page(response.content.decode(), refused)
    assert not ExecutorHost.objects.filter(name="from-admin").exists()
    # Saved behind full_clean()'s back, the host refuses every job create_job is asked to queue on it.
    host = make_host({})
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config=finding.host)
    host.refresh_from_db()
    assert finding.code in create_job_refusal(host, test_image, {})


@pytest.mark.parametrize("name", sorted(HOST_FINDINGS))
def test_a_host_changed_behind_the_backs_of_the_doors_launches_nothing(
    name: str, test_image: str, cleanup: None, engine_creates: Callable[[], int]
) -> None:
    finding = HOST_FINDINGS[name]
    host = make_host({})
    job = ContainerJob.objects.create_job(test_image, "true", docker_host=host)
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config=finding.host)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    host.refresh_from_db()
    # The host's fault, not the job's: the host is unhealthy with the reason, its jobs wait unlaunched.
    assert (job.status, job.attempt, host.healthy) == (JobStatus.PENDING, 0, False)
    assert full_clean_refusal(finding.host, host.name)[finding.code] in host.last_health_error
    assert engine_creates() == 0


# What only the engine request can carry ---------------------------------------------------------

ALLOW_ALL_SECCOMP = 'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'
REQUEST_FINDINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "inline allow-all seccomp": (
        lambda hc: hc.update(SecurityOpt=[*hc.get("SecurityOpt", []), ALLOW_ALL_SECCOMP]),
        "payload.security-opt",
    ),
    "tmpfs over /etc": (lambda hc: hc.update(Tmpfs={"/etc": "size=1m"}), "payload.mount-target"),
    "tmpfs over /usr": (lambda hc: hc.update(Tmpfs={"/usr": "size=1m"}), "payload.mount-target"),
    "tmpfs over /proc/sys": (lambda hc: hc.update(Tmpfs={"/proc/sys": "size=1m"}), "payload.mount-target"),
}


@pytest.mark.parametrize("name", sorted(REQUEST_FINDINGS))
def test_a_request_finding_fails_the_launch_with_no_create(
    name: str,
    test_image: str,
    cleanup: None,
    engine_creates: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No job field or host setting reaches these any more: a faulty translation is the only way in,
    # so the plugin's own request build is made faulty, and the guard must still refuse it.
    change, code = REQUEST_FINDINGS[name]

    def faulty_build(*args: Any, **kwargs: Any) -> CreatePayload:
        payload = build_create_payload(*args, **kwargs)
        change(payload.config["HostConfig"])
        return payload

    monkeypatch.setattr(docker_plugin, "build_create_payload", faulty_build)
    job = ContainerJob.objects.create_job(test_image, "true", docker_host=make_host({}))
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.termination_reason) == (JobStatus.FAILED, TerminationReason.LAUNCH_FAILED)
    assert f"[{code}]" in job.last_error
    assert engine_creates() == 0


def test_the_event_count_sees_a_create(
    test_image: str, cleanup: None, engine_creates: Callable[[], int]
) -> None:
    # The zero counts above mean something only if an accepted job's create is counted.
    job = ContainerJob.objects.create_job(test_image, "true", docker_host=make_host({}))
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert job.status in (JobStatus.RUNNING, JobStatus.COMPLETED), job.last_error
    assert engine_creates() == 1
