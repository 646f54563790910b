"""System checks and migrations: what `manage.py check` and `makemigrations --check` see."""

from __future__ import annotations

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from container_manager.checks import check_executor_plugins, check_settings
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
def test_hosts_are_read_only_when_django_passes_databases(settings, django_assert_num_queries):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock"}
    make_host("orphan", executor_type="nomad")
    make_host("fine", executor_type="mock")
    with django_assert_num_queries(0):
        assert check_executor_plugins(databases=None) == []
    [warning] = check_executor_plugins(databases=["default"])
    assert warning.msg.startswith("No executor plugin for 'nomad'")
    assert warning.hint == "Used by executor hosts (default)."


@pytest.mark.django_db
def test_the_checks_are_registered_with_django(settings):
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock"}
    call_command("check", "--database", "default", "--fail-level", "WARNING")
    settings.CONTAINER_MANAGER = {"MAX_CPU": 0}
    with pytest.raises(SystemCheckError, match=r"container_manager\.E001"):
        call_command("check")


@pytest.mark.django_db
def test_models_and_migrations_agree():
    # SystemExit(1) means a model change has no migration yet.
    call_command("makemigrations", "container_manager", "--check", "--dry-run", verbosity=0)
