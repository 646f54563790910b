"""REQUIRE_USER_NAMESPACES: on by default, handed to the plugins with every host, and warned about
(container_manager.W003) while it is off in a deployment that is not in DEBUG."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Warning
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from container_manager.checks import check_user_namespaces
from container_manager.conf import AppSettings, app_settings
from container_manager.models import ExecutorHost


def test_it_is_on_by_default() -> None:
    assert AppSettings().REQUIRE_USER_NAMESPACES is True


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_only_true_or_false_is_accepted(settings: Any, value: object) -> None:
    settings.CONTAINER_MANAGER = {"REQUIRE_USER_NAMESPACES": value}
    with pytest.raises(ImproperlyConfigured, match=r"REQUIRE_USER_NAMESPACES'\] must be True or False"):
        app_settings()


@pytest.mark.parametrize("required", [True, False])
def test_every_host_carries_it_to_its_plugin(settings: Any, required: bool) -> None:
    settings.CONTAINER_MANAGER = {"REQUIRE_USER_NAMESPACES": required}
    host = ExecutorHost(name="d1", executor_type="docker", connection_string="unix:///var/run/docker.sock")
    assert host.to_spec().require_user_namespaces is required


def test_off_without_debug_is_a_warning(settings: Any) -> None:
    settings.DEBUG = False
    settings.CONTAINER_MANAGER = {"REQUIRE_USER_NAMESPACES": False}
    [warning] = check_user_namespaces()
    assert isinstance(warning, Warning)
    assert warning.id == "container_manager.W003"
    assert "root in a container is root on the machine" in warning.msg
    assert '"userns-remap": "default"' in str(warning.hint)


@pytest.mark.parametrize(
    ("debug", "manager"),
    [(False, {}), (False, {"REQUIRE_USER_NAMESPACES": True}), (True, {"REQUIRE_USER_NAMESPACES": False})],
    ids=["default", "on", "off-in-debug"],
)
def test_no_warning_when_required_or_in_debug(settings: Any, debug: bool, manager: dict[str, Any]) -> None:
    settings.DEBUG = debug
    settings.CONTAINER_MANAGER = manager
    assert check_user_namespaces() == []


def test_invalid_settings_are_left_to_e001(settings: Any) -> None:
    settings.DEBUG = False
    settings.CONTAINER_MANAGER = {"REQUIRE_USER_NAMESPACES": "no"}
    assert check_user_namespaces() == []


@pytest.mark.django_db
def test_the_warning_is_registered_with_django(settings: Any) -> None:
    settings.DEBUG = False
    settings.CONTAINER_MANAGER = {"DEFAULT_EXECUTOR_TYPE": "mock", "REQUIRE_USER_NAMESPACES": False}
    with pytest.raises(SystemCheckError, match=r"container_manager\.W003"):
        call_command("check", "--fail-level", "WARNING")
