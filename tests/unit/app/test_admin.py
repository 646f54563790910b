"""Admin pages render, their actions call the model's event methods, and no secret is ever rendered."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.urls import reverse

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus
from container_manager_core.secrets import REDACTED
from tests.factories import advance, make_host, make_job, make_template

pytestmark = pytest.mark.django_db

# Test-only secrets, distinctive so a search of the HTML cannot match anything else.
REGISTRY_PASSWORD = "Registry-Pa55-zq81"  # noqa: S105
API_TOKEN = "Tok-77-hq2v"  # noqa: S105
DB_PASSWORD = "Db-Pa55-hx42"  # noqa: S105
NEW_PASSWORD = "brand-new-pass"  # noqa: S105
SECRETS = (REGISTRY_PASSWORD, API_TOKEN, DB_PASSWORD)


@pytest.fixture
def secret_host(db) -> ExecutorHost:
    # A Docker host: its config keys are checked on save, so the secrets sit where Docker reads them.
    return make_host(
        "secret-host",
        executor_type="docker",
        connection_string="unix:///var/run/docker.sock",
        executor_config={
            "registry_auth": {
                "username": "deploy-bot",
                "password": REGISTRY_PASSWORD,
                "identitytoken": API_TOKEN,
            },
            "default_network": "eu-west",
        },
    )


@pytest.fixture
def secret_job(secret_host) -> ContainerJob:
    return make_job(
        host=secret_host, name="with-secrets", environment_vars={"DB_PASSWORD": DB_PASSWORD, "MODE": "x"}
    )


def url(name: str, *args: object) -> str:
    return reverse(f"admin:container_manager_{name}", args=args)


def page(client, address: str) -> str:
    response = client.get(address)
    assert response.status_code == 200, address
    html: str = response.content.decode()
    for secret in SECRETS:
        assert secret not in html, f"{secret!r} rendered on {address}"
    return html


def pre_block(html: str, name: str) -> str:
    """Return the text of the one ``<pre class="cm-log cm-{name}">`` block."""
    [text] = re.findall(rf'<pre class="cm-log cm-{name}">(.*?)</pre>', html, re.S)
    return str(text)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def form_data(response) -> dict[str, Any]:
    """Return the POST data a browser would send for the admin form on ``response``, unchanged."""
    form = response.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field, forms.MultipleChoiceField):
            data[name] = list(value or [])
        elif isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(field.widget, AdminSplitDateTime):
            data[f"{name}_0"] = data[f"{name}_1"] = ""
        else:
            data[name] = "" if value is None else str(value)
    return data


# Secrets -----------------------------------------------------------------------------------------


def test_no_admin_page_renders_a_secret(admin_client, secret_host, secret_job):
    finished = advance(
        make_job(host=secret_host, name="done", environment_vars={"DB_PASSWORD": DB_PASSWORD}),
        JobStatus.COMPLETED,
    )
    addresses = [
        url("executorhost_changelist"),
        url("executorhost_change", secret_host.pk),
        url("executorhost_history", secret_host.pk),
        url("executorhost_delete", secret_host.pk),
        url("containerjob_changelist"),
        url("containerjob_change", secret_job.pk),
        url("containerjob_change", finished.pk),
        url("containerjob_logs", finished.pk),
        url("containerjob_queue_summary"),
        reverse("admin:index"),
    ]
    for address in addresses:
        page(admin_client, address)


def test_the_host_form_shows_the_config_masked(admin_client, secret_host):
    html = page(admin_client, url("executorhost_change", secret_host.pk))
    assert "deploy-bot" in html and "eu-west" in html
    assert REDACTED in html


def test_saving_the_masked_config_keeps_the_stored_secrets(admin_client, secret_host):
    response = admin_client.get(url("executorhost_change", secret_host.pk))
    data = form_data(response)
    config = json.loads(data["executor_config"])
    config["default_network"] = "us-east"
    data["executor_config"] = json.dumps(config)
    data["weight"] = "7"

    response = admin_client.post(url("executorhost_change", secret_host.pk), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    secret_host.refresh_from_db()
    assert secret_host.weight == 7
    assert secret_host.executor_config == {
        "registry_auth": {
            "username": "deploy-bot",
            "password": REGISTRY_PASSWORD,
            "identitytoken": API_TOKEN,
        },
        "default_network": "us-east",
    }


def test_a_replaced_secret_is_saved(admin_client, secret_host):
    data = form_data(admin_client.get(url("executorhost_change", secret_host.pk)))
    config = json.loads(data["executor_config"])
    config["registry_auth"]["password"] = NEW_PASSWORD
    data["executor_config"] = json.dumps(config)
    assert admin_client.post(url("executorhost_change", secret_host.pk), data).status_code == 302
    secret_host.refresh_from_db()
    assert secret_host.executor_config["registry_auth"]["password"] == NEW_PASSWORD
    assert secret_host.executor_config["registry_auth"]["identitytoken"] == API_TOKEN


def test_the_mask_cannot_stand_for_a_secret_that_was_never_stored(admin_client, secret_host):
    data = form_data(admin_client.get(url("executorhost_change", secret_host.pk)))
    config = json.loads(data["executor_config"])
    config["new_secret"] = REDACTED
    data["executor_config"] = json.dumps(config)
    response = admin_client.post(url("executorhost_change", secret_host.pk), data)
    assert response.status_code == 200
    assert "&#x27;new_secret&#x27; holds the mask" in response.content.decode()
    for secret in SECRETS:
        assert secret not in response.content.decode()


def test_an_invalid_host_form_is_shown_with_the_config_still_masked(admin_client, secret_host):
    data = form_data(admin_client.get(url("executorhost_change", secret_host.pk)))
    data["tls_enabled"] = "on"
    data["tls_ca_cert"] = "certs/ca.pem"
    response = admin_client.post(url("executorhost_change", secret_host.pk), data)
    html = response.content.decode()
    assert response.status_code == 200
    assert "The TLS file path must be absolute" in html
    for secret in SECRETS:
        assert secret not in html


# Hosts -------------------------------------------------------------------------------------------


def test_host_list_shows_health_and_load(admin_client, secret_host):
    advance(make_job(host=secret_host), JobStatus.RUNNING)
    html = page(admin_client, url("executorhost_changelist"))
    assert "unchecked" in html
    assert "1 / 5" in html


def test_the_check_health_action_saves_the_result(admin_client, db):
    good = make_host("good")
    bad = make_host("bad", executor_config={"unhealthy": "disk full"})
    response = admin_client.post(
        url("executorhost_changelist"),
        {"action": "check_health", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    [unhealthy, healthy] = messages_of(response)  # in host name order
    assert re.fullmatch(r"good: healthy \(\d+ ms\)\.", healthy)
    assert unhealthy == "bad: unhealthy: disk full"
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.healthy and good.last_health_check is not None and good.health_response_time is not None
    assert not bad.healthy and bad.last_health_error == "disk full"
    html = page(admin_client, url("executorhost_changelist"))
    assert ">healthy<" in html and ">unhealthy<" in html


def test_adding_a_host_of_an_uninstalled_type_shows_the_install_hint(admin_client):
    data = form_data(admin_client.get(url("executorhost_add")))
    data.update(
        name="k8s", executor_type="nomad", connection_string="unix:///run/x.sock", executor_config="{}"
    )
    response = admin_client.post(url("executorhost_add"), data)
    assert response.status_code == 200
    assert "No executor plugin for &#x27;nomad&#x27;" in response.content.decode()
    assert not ExecutorHost.objects.filter(name="k8s").exists()


# Templates ---------------------------------------------------------------------------------------


def test_template_pages_and_line_numbered_errors(admin_client):
    make_template("base", "A=1\nB=2\n")
    html = page(admin_client, url("environmentvariabletemplate_changelist"))
    assert "A, B" in html
    response = admin_client.post(
        url("environmentvariabletemplate_add"),
        {"name": "bad", "description": "", "environment_variables_text": "A=1\nnot a variable\n"},
    )
    assert response.status_code == 200
    assert "In the variables to set, line 2:" in response.content.decode()
    assert not EnvironmentVariableTemplate.objects.filter(name="bad").exists()


# Jobs --------------------------------------------------------------------------------------------


def test_job_list_badges_filters_and_search(admin_client, host):
    running = advance(make_job(host=host, name="alpha", image="busybox:1.36"), JobStatus.RUNNING)
    make_job(host=host, name="beta", command="python -m worker")
    html = page(admin_client, url("containerjob_changelist"))
    assert 'class="cm-badge"' in html and "Running" in html and "Pending" in html
    assert url("containerjob_queue_summary") in html

    def names(query: str) -> set[str]:
        response = admin_client.get(url("containerjob_changelist") + query)
        return {job.name for job in response.context["cl"].result_list}

    assert names("?status__exact=running") == {"alpha"}
    assert names(f"?docker_host__id__exact={host.pk}") == {"alpha", "beta"}
    assert names("?docker_image=busybox%3A1.36") == {"alpha"}
    assert names("?q=beta") == {"beta"}
    assert names("?q=worker") == {"beta"}
    assert names("?q=1.36") == {"alpha"}
    assert names(f"?q={running.pk}") == {"alpha"}


def test_a_pending_job_is_editable_and_keeps_its_write_only_overrides(admin_client, secret_job):
    response = admin_client.get(url("containerjob_change", secret_job.pk))
    data = form_data(response)
    assert data["environment_overrides"] == ""  # values are never sent to the page
    assert data["remove_overrides"] == []
    data["priority"] = "9"
    response = admin_client.post(url("containerjob_change", secret_job.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    secret_job.refresh_from_db()
    assert secret_job.priority == 9
    assert secret_job.environment_overrides == {"DB_PASSWORD": DB_PASSWORD, "MODE": "x"}


def test_the_job_form_reports_every_policy_violation(admin_client, secret_job):
    data = form_data(admin_client.get(url("containerjob_change", secret_job.pk)))
    data.update(memory_limit="99999", user="0")
    html = admin_client.post(url("containerjob_change", secret_job.pk), data).content.decode()
    assert "memory_limit_mb is 99999, above the maximum of 2048" in html
    assert "The container must run as a non-root user" in html
    secret_job.refresh_from_db()
    assert secret_job.memory_limit == 256


def test_adding_a_job_uses_the_default_limits(admin_client, host):
    data = form_data(admin_client.get(url("containerjob_add")))
    assert (data["memory_limit"], data["pids_limit"], data["user"]) == ("256", "256", "1001:1001")
    data.update(name="from-admin", docker_image="busybox:latest", command="true", docker_host=str(host.pk))
    response = admin_client.post(url("containerjob_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = ContainerJob.objects.get(name="from-admin")
    assert job.status == JobStatus.PENDING
    assert job.to_spec().memory_limit_mb == 256


def test_a_finished_job_is_read_only(admin_client, secret_job):
    advance(secret_job, JobStatus.FAILED)
    response = admin_client.get(url("containerjob_change", secret_job.pk))
    html = page(admin_client, url("containerjob_change", secret_job.pk))
    assert not response.context["has_change_permission"]
    assert "DB_PASSWORD, MODE" in html
    assert url("containerjob_logs", secret_job.pk) in html


def test_the_logs_page_separates_the_streams(admin_client, host):
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    ContainerJob.objects.filter(pk=job.pk).update(
        stdout_log="hello <b>out</b>\n", stderr_log="warning: err\n", parsed_output={"rows": 3, "ok": True}
    )
    job.append_event("Exited with code 0.")
    html = page(admin_client, url("containerjob_logs", job.pk))
    stdout, stderr, parsed, events = (
        pre_block(html, name) for name in ("stdout", "stderr", "parsed", "events")
    )
    assert stdout == "hello &lt;b&gt;out&lt;/b&gt;\n"
    assert stderr == "warning: err\n"
    assert parsed == "{\n  &quot;ok&quot;: true,\n  &quot;rows&quot;: 3\n}"
    assert "Exited with code 0." in events


def test_the_logs_page_says_how_many_bytes_were_cut_and_replaced(admin_client, host):
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    html = page(admin_client, url("containerjob_logs", job.pk))
    assert "cut from the middle" not in html
    assert "replaced to store the output" not in html
    ContainerJob.objects.filter(pk=job.pk).update(
        stdout_log="a\u2400b\n", stdout_dropped_bytes=5, stdout_replaced_bytes=1, stderr_replaced_bytes=3
    )
    html = page(admin_client, url("containerjob_logs", job.pk))
    assert "5 bytes were cut from the middle." in html
    assert "1 byte was replaced to store the output as text (NUL by \u2400, invalid UTF-8 by \ufffd)." in html
    assert "3 bytes were replaced to store the output as text" in html
    assert pre_block(html, "stdout") == "a\u2400b\n"


def test_the_logs_page_of_an_unknown_job_is_404(admin_client):
    assert admin_client.get(url("containerjob_logs", "not-a-uuid")).status_code == 404


def test_the_queue_summary_counts_by_status_and_host_load(admin_client, db):
    one = make_host("one", max_concurrent_jobs=2)
    two = make_host("two", max_concurrent_jobs=3)
    advance(make_job(host=one), JobStatus.RUNNING)
    advance(make_job(host=one), JobStatus.LAUNCHING)
    advance(make_job(host=two), JobStatus.COMPLETED)
    make_job(host=two)
    make_job(host=two)
    response = admin_client.get(url("containerjob_queue_summary"))
    html = response.content.decode()
    counts = {row["status"].value: row["count"] for row in response.context["by_status"]}
    assert counts == {
        "pending": 2, "launching": 1, "running": 1, "retrying": 0,
        "completed": 1, "failed": 0, "timeout": 0, "cancelled": 0,
    }  # fmt: skip
    assert '<td class="cm-load" data-host="one">2 / 2 (full)</td>' in html
    assert '<td class="cm-load" data-host="two">0 / 3</td>' in html


def test_the_cancel_action(admin_client, host):
    queued = make_job(host=host, name="queued")
    running = advance(make_job(host=host, name="running"), JobStatus.RUNNING)
    done = advance(make_job(host=host, name="done"), JobStatus.COMPLETED)
    response = admin_client.post(
        url("containerjob_changelist"),
        {"action": "cancel_jobs", "_selected_action": [queued.pk, running.pk, done.pk]},
        follow=True,
    )
    assert sorted(messages_of(response)) == [
        "Asked the worker to stop 1 running job(s).",
        "Cancelled 1 queued job(s).",
        "done: already completed.",
    ]
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED
    assert running.status == JobStatus.RUNNING and running.cancel_requested_at is not None


def test_the_retry_action(admin_client, host):
    failed = advance(make_job(host=host, name="failed"), JobStatus.FAILED)
    running = advance(make_job(host=host, name="busy"), JobStatus.RUNNING)
    response = admin_client.post(
        url("containerjob_changelist"),
        {"action": "retry_jobs", "_selected_action": [failed.pk, running.pk]},
        follow=True,
    )
    assert sorted(messages_of(response)) == [
        "Re-queued 1 job(s).",
        "busy: only a finished job can be retried.",
    ]
    failed.refresh_from_db()
    assert failed.status == JobStatus.PENDING
    assert "Re-queued. Previous run: status=failed" in failed.docker_log


def test_the_duplicate_action(admin_client, host):
    job = advance(make_job(host=host, name="original"), JobStatus.COMPLETED)
    response = admin_client.post(
        url("containerjob_changelist"),
        {"action": "duplicate_jobs", "_selected_action": [job.pk]},
        follow=True,
    )
    assert messages_of(response) == ["Queued 1 duplicate job(s)."]
    copies = ContainerJob.objects.filter(name="original").exclude(pk=job.pk)
    assert [c.status for c in copies] == [JobStatus.PENDING]


def test_the_duplicate_action_reports_an_unavailable_host(admin_client, host):
    job = advance(make_job(host=host, name="original"), JobStatus.COMPLETED)
    ExecutorHost.objects.filter(pk=host.pk).update(is_active=False)
    response = admin_client.post(
        url("containerjob_changelist"),
        {"action": "duplicate_jobs", "_selected_action": [job.pk]},
        follow=True,
    )
    assert messages_of(response) == [
        "original: Host 'mock-1' is unavailable (inactive): do not queue jobs on an unavailable daemon."
    ]
    assert ContainerJob.objects.count() == 1
