"""Environment values are write-only in the admin: every page shows names, never a value.

Secrets of every kind the rule knows (a secret name, a URL with credentials, a DSN, a token format,
a private key) and a plain value beside them: the admin shows none of them, since an environment
value is never shown, secret-looking or not. Values are kept unless replaced, and a malformed
stored line is named by its number and can be removed without being shown.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.urls import reverse

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from container_manager.worker.reports import fail_launch, spec_or_error
from container_manager_core.envfile import format_env_text
from tests.factories import advance, make_host, make_job
from tests.unit.app.test_admin import form_data

pytestmark = pytest.mark.django_db

# Test-only values, each distinctive so a search of a page cannot match anything else.
VALUES = {
    "DB_PASSWORD": "hunter2-qv81",  # secret by name
    "DATABASE_URL": "postgres://app:pw-Xk29@db/app",  # credentials in a URL
    "SENTRY_DSN": "https://dsnkey7731@o1.ingest.sentry.io/42",  # a DSN
    "GITHUB_PAT": "ghp_" + "Qm7" * 12,  # a token format
    "SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----\n",
    "CALLBACK": "https://hooks.example/cb?sig=plain-but-never-shown-47",  # nothing secret-looking
}
# What must never be on a page: every value, and the parts a renderer might show apart.
NEEDLES = [*VALUES.values(), "hunter2", "pw-Xk29", "dsnkey7731", "Qm7Qm7", "b3BlbnNzaC1rZXktdjE", "plain-but"]
OVERRIDES = {
    "JOB_TOKEN": "tok-Jb55-override",
    "REPORT_DSN": "mysql://rep:rp-881@db/x",
    "LEVEL": "lvl-plain-9",
}
NEEDLES += [*OVERRIDES.values(), "rp-881"]
MALFORMED = "TOKEN ghp_" + "Zz9" * 12  # a line without '=', its secret and all
# The values the tests type into the admin's forms.
TYPED = {"template": "DB_PASSWORD=new-secret-Pw77\n", "job": "JOB_TOKEN=new-secret-Tk55\n"}
NEEDLES += ["Zz9Zz9", "new-secret-Pw77", "new-secret-Tk55"]


def url(name: str, *args: object) -> str:
    return reverse(f"admin:container_manager_{name}", args=args)


def page(client: Any, address: str, **post: Any) -> str:
    response = client.post(address, post) if post else client.get(address)
    assert response.status_code in (200, 302), address
    html: str = response.content.decode()
    for needle in NEEDLES:
        assert needle not in html, f"{needle!r} rendered on {address}"
    return html


@pytest.fixture
def template() -> EnvironmentVariableTemplate:
    text = "# shared settings\n" + format_env_text(VALUES)
    return EnvironmentVariableTemplate.objects.create(name="shared", environment_variables_text=text)


@pytest.fixture
def broken_template() -> EnvironmentVariableTemplate:
    # Stored behind clean()'s back, as an older release or a raw SQL fix would.
    text = f"DB_PASSWORD={VALUES['DB_PASSWORD']}\n{MALFORMED}\nLEVEL=1\n"
    return EnvironmentVariableTemplate.objects.create(name="broken", environment_variables_text=text)


def test_no_admin_page_renders_an_environment_value(admin_client, template, broken_template):
    host = make_host()
    pending = make_job(host=host, name="pending", environment_template=template, environment_vars=OVERRIDES)
    finished = advance(
        make_job(host=host, name="finished", environment_template=template, environment_vars=OVERRIDES),
        JobStatus.COMPLETED,
    )
    # A job whose template no longer parses, failed by the worker as it does at a claim.
    failed = make_job(host=host, name="failed")
    ContainerJob.objects.filter(pk=failed.pk).update(environment_template=broken_template)
    failed = advance(ContainerJob.objects.get(pk=failed.pk), JobStatus.LAUNCHING)
    spec, error = spec_or_error(failed)
    assert spec is None
    assert fail_launch(failed, failed.owner(), host.name, TerminationReason.INVALID_SPEC, error)
    failed.refresh_from_db()
    assert "Line 2" in failed.last_error

    # Saving through the admin makes history entries; their messages are on the history pages.
    data = form_data(admin_client.get(url("environmentvariabletemplate_change", template.pk)))
    data["environment_variables_text"] = TYPED["template"]
    assert admin_client.post(url("environmentvariabletemplate_change", template.pk), data).status_code == 302
    data = form_data(admin_client.get(url("containerjob_change", pending.pk)))
    data["environment_overrides"] = TYPED["job"]
    assert admin_client.post(url("containerjob_change", pending.pk), data).status_code == 302
    for address in [
        url("environmentvariabletemplate_changelist"),
        url("environmentvariabletemplate_add"),
        url("environmentvariabletemplate_change", template.pk),
        url("environmentvariabletemplate_change", broken_template.pk),
        url("environmentvariabletemplate_history", template.pk),
        url("environmentvariabletemplate_delete", template.pk),
        url("environmentvariabletemplate_delete", broken_template.pk),
        url("containerjob_changelist"),
        url("containerjob_add"),
        url("containerjob_change", pending.pk),
        url("containerjob_change", finished.pk),
        url("containerjob_change", failed.pk),
        url("containerjob_history", pending.pk),
        url("containerjob_delete", pending.pk),
        url("containerjob_logs", failed.pk),
        url("containerjob_logs", finished.pk),
        url("containerjob_queue_summary"),
        url("containerjob_workers"),
        url("containerjob_tail", failed.pk),
        url("containerjob_tail", pending.pk),
        url("containerjob_download", failed.pk, "stdout"),
        url("containerjob_download", failed.pk, "stderr"),
        reverse("admin:index"),
    ]:
        page(admin_client, address)
    for entry in LogEntry.objects.all():
        assert not any(needle in entry.change_message for needle in NEEDLES), entry.change_message


def test_the_template_page_lists_names_and_keeps_values_unless_replaced(admin_client, template):
    html = page(admin_client, url("environmentvariabletemplate_change", template.pk))
    for name in VALUES:
        assert f'value="{name}"' in html  # a box to tick to remove it
    data = form_data(admin_client.get(url("environmentvariabletemplate_change", template.pk)))
    assert data["environment_variables_text"] == ""
    data["description"] = "edited"
    data["remove_variables"] = ["CALLBACK"]
    data["environment_variables_text"] = "DB_PASSWORD=replaced-Pw\nNEW_ONE=\n"

    response = admin_client.post(url("environmentvariabletemplate_change", template.pk), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    template.refresh_from_db()
    expected = {**VALUES, "DB_PASSWORD": "replaced-Pw", "NEW_ONE": ""}
    del expected["CALLBACK"]
    assert template.get_environment_variables() == expected
    assert template.environment_variables_text.startswith("# shared settings\n")  # comments kept
    [entry] = LogEntry.objects.filter(object_id=str(template.pk))
    assert "DB_PASSWORD (set)" in entry.get_change_message()
    assert "CALLBACK (removed)" in entry.get_change_message()


def test_saving_a_template_untouched_keeps_every_value(admin_client, template):
    before = template.environment_variables_text
    data = form_data(admin_client.get(url("environmentvariabletemplate_change", template.pk)))
    data["description"] = "only the description"
    assert admin_client.post(url("environmentvariabletemplate_change", template.pk), data).status_code == 302
    template.refresh_from_db()
    assert template.environment_variables_text == before


def test_replace_all_makes_the_template_exactly_the_lines_given(admin_client, template):
    data = form_data(admin_client.get(url("environmentvariabletemplate_change", template.pk)))
    data["environment_variables_text"] = "ONLY=this\n"
    data["replace_all_variables"] = "on"
    assert admin_client.post(url("environmentvariabletemplate_change", template.pk), data).status_code == 302
    template.refresh_from_db()
    assert template.get_environment_variables() == {"ONLY": "this"}


def test_a_typo_in_the_new_values_is_reported_by_line_and_never_echoed(admin_client, template):
    data = form_data(admin_client.get(url("environmentvariabletemplate_change", template.pk)))
    data["environment_variables_text"] = f"A=1\nDB_PASSWORD {VALUES['DB_PASSWORD']}\n"
    html = page(admin_client, url("environmentvariabletemplate_change", template.pk), **data)
    assert "In the variables to set, line 2: there is no &#x27;=&#x27;" in html
    template.refresh_from_db()
    assert template.get_environment_variables() == VALUES


def test_a_malformed_stored_line_is_named_by_number_and_can_be_removed(admin_client, broken_template):
    html = page(admin_client, url("environmentvariabletemplate_changelist"))
    assert "invalid: Line 2: there is no" in html
    html = page(admin_client, url("environmentvariabletemplate_change", broken_template.pk))
    assert "Line 2 (malformed: there is no" in html

    data = form_data(admin_client.get(url("environmentvariabletemplate_change", broken_template.pk)))
    data["environment_variables_text"] = "LEVEL=2\n"
    html = page(admin_client, url("environmentvariabletemplate_change", broken_template.pk), **data)
    assert "tick its malformed lines" in html  # still invalid: nothing saved

    data["remove_variables"] = ["#2"]
    response = admin_client.post(url("environmentvariabletemplate_change", broken_template.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    broken_template.refresh_from_db()
    assert broken_template.get_environment_variables() == {"DB_PASSWORD": VALUES["DB_PASSWORD"], "LEVEL": "2"}


def test_job_overrides_are_kept_unless_replaced_and_can_be_removed(admin_client):
    job = make_job(host=make_host(), environment_vars=OVERRIDES)
    html = page(admin_client, url("containerjob_change", job.pk))
    for name in OVERRIDES:
        assert f'value="{name}"' in html
    data = form_data(admin_client.get(url("containerjob_change", job.pk)))
    data["remove_overrides"] = ["LEVEL"]
    data["environment_overrides"] = "JOB_TOKEN=tok-new\nEXTRA=1\n"
    response = admin_client.post(url("containerjob_change", job.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    job.refresh_from_db()
    assert job.environment_overrides == {
        "JOB_TOKEN": "tok-new",
        "REPORT_DSN": OVERRIDES["REPORT_DSN"],
        "EXTRA": "1",
    }


def test_adding_a_job_with_overrides_from_the_admin(admin_client):
    host = make_host()
    data = form_data(admin_client.get(url("containerjob_add")))
    data.update(name="from-admin", docker_image="busybox:latest", command="true", docker_host=str(host.pk))
    data["environment_overrides"] = format_env_text(OVERRIDES)
    response = admin_client.post(url("containerjob_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert ContainerJob.objects.get(name="from-admin").environment_overrides == OVERRIDES


def test_a_host_config_error_never_quotes_a_credential(admin_client):
    # A non-secret key holding a credential by its content: the plugin's message quotes the value.
    host = ExecutorHost(
        name="docker-1",
        executor_type="docker",
        connection_string="unix:///var/run/docker.sock",
        executor_config={"pull_timeout": "https://deploy:net-Pw-3318@registry.example/x"},
    )
    with pytest.raises(ValidationError) as info:
        host.full_clean()
    assert "pull_timeout" in str(info.value)
    assert "net-Pw-3318" not in str(info.value)
