"""System checks and migrations: what `manage.py check` and `makemigrations --check` see."""

from __future__ import annotations

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import OperationalError, connection

from container_manager.checks import HOSTS_NAMED, check_executor_plugins, check_host_plugins, check_settings
from container_manager.models import ExecutorHost
from tests.factories import make_host


def test_valid_settings_pass(settings):
    settings.CONTAINER_MANAGER = {}
    assert check_settings() == []


def test_invalid_settings_are_an_error(settings):
    settings.CONTAINER_MANAGER = {"MAX_CPU": 0}
    [error] = check_settings()
    assert isinstance(error, Error)
    assert error.id == "container_manager.E001"
    assert "MAX_CPU" in error.msg


def test_a_default_executor_type_without_a_plugin_is_a_warning(settings):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "nomad"}
    [warning] = check_executor_plugins()
    assert isinstance(warning, Warning)
    assert warning.id == "container_manager.W001"
    assert warning.msg.startswith("No executor plugin for 'nomad'")
    assert "DEFAULT_EXECUTOR_TYPE" in str(warning.hint)


@pytest.mark.django_db
def test_an_active_host_without_a_plugin_is_a_warning_without_database(settings, capsys):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock"}
    make_host("cloud-1", executor_type="cloudrun-x")
    make_host("cloud-2", executor_type="cloudrun-x")
    make_host("retired", executor_type="nomad", is_active=False)  # an inactive host runs nothing
    make_host("fine", executor_type="mock")
    assert check_executor_plugins() == []
    [warning] = check_host_plugins()
    assert warning.id == "container_manager.W002"
    assert warning.msg.startswith("No executor plugin for 'cloudrun-x'")
    assert str(warning.hint).startswith("Used by the active executor hosts cloud-1, cloud-2:")
    # Plain `manage.py check`, no --database: the host table is read all the same.
    call_command("check")
    assert "container_manager.W002" in capsys.readouterr().err


@pytest.mark.django_db
def test_many_hosts_are_named_up_to_a_limit():
    for n in range(HOSTS_NAMED + 2):
        make_host(f"nomad-{n:02}", executor_type="nomad")
    [warning] = check_host_plugins()
    assert "nomad-09" in str(warning.hint)
    assert "nomad-10" not in str(warning.hint)
    assert " and 2 more:" in str(warning.hint)


@pytest.mark.django_db
def test_the_host_check_is_silent_before_migrate(settings, monkeypatch):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock"}
    make_host("orphan", executor_type="nomad")
    # As before the first migrate: the host table is not there (dropping it would drop the queue trigger).
    monkeypatch.setattr(ExecutorHost._meta, "db_table", "container_manager_not_migrated_yet")
    assert check_host_plugins() == []
    call_command("check", "--fail-level", "WARNING")


def test_the_host_check_is_silent_without_a_database(settings, monkeypatch):
    def unreachable(self):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(type(connection.introspection), "table_names", unreachable)
    assert check_host_plugins() == []


def test_the_host_check_creates_no_sqlite_file(monkeypatch, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("An SQLite database only.")
    path = tmp_path / "not-yet.sqlite3"
    monkeypatch.setitem(connection.settings_dict, "NAME", str(path))
    monkeypatch.setattr(type(connection.introspection), "table_names", lambda self: pytest.fail("connected"))
    assert check_host_plugins() == []
    assert not path.exists()


@pytest.mark.django_db
def test_the_checks_are_registered_with_django(settings):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock"}
    call_command("check", "--fail-level", "WARNING")
    settings.CONTAINER_MANAGER = {"MAX_CPU": 0}
    with pytest.raises(SystemCheckError, match=r"container_manager\.E001"):
        call_command("check")


@pytest.mark.django_db
def test_models_and_migrations_agree():
    # SystemExit(1) means a model change has no migration yet.
    call_command("makemigrations", "container_manager", "--check", "--dry-run", verbosity=0)
