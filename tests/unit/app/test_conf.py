"""CONTAINER_MANAGER is read lazily into a validated, frozen object."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ImproperlyConfigured

from container_manager.conf import MIB, app_settings
from container_manager_core.types import PolicyLimits


def test_defaults_match_the_documented_values(settings):
    settings.CONTAINER_MANAGER = {}
    conf = app_settings()
    assert (conf.MAX_MEMORY_MB, conf.MAX_CPU, conf.MAX_TIMEOUT_SECONDS, conf.MIN_UID) == (
        2048,
        2.0,
        3600,
        1001,
    )
    assert conf.ALLOWED_REGISTRIES is None
    assert (conf.MIN_MEMORY_MB, conf.MIN_CPU) == (6, 0.01)
    assert (conf.DEFAULT_MEMORY_LIMIT_MB, conf.DEFAULT_CPU_LIMIT, conf.DEFAULT_TIMEOUT_SECONDS) == (
        256,
        1.0,
        600,
    )
    assert (conf.DEFAULT_PIDS_LIMIT, conf.DEFAULT_USER, conf.DEFAULT_NETWORK_MODE) == (
        256,
        "1001:1001",
        None,
    )
    assert conf.DEFAULT_EXECUTOR_TYPE == "docker"
    assert (conf.POLL_INTERVAL, conf.HEALTH_CHECK_INTERVAL, conf.LEASE_SECONDS, conf.RECONCILE_INTERVAL) == (
        1.0,
        30,
        60,
        30,
    )
    assert conf.LOG_CAP_BYTES == MIB
    assert conf.CLEANUP_AFTER_HARVEST is True
    assert conf.ALLOW_WRITABLE_ROOT is False
    assert (conf.SHUTDOWN_GRACE_SECONDS, conf.RETRY_BACKOFF_BASE_SECONDS, conf.RETRY_BACKOFF_MAX_SECONDS) == (
        30,
        5,
        600,
    )


def test_the_object_is_frozen_and_cached_until_the_setting_changes(settings):
    settings.CONTAINER_MANAGER = {"MAX_CPU": 1.5}
    first = app_settings()
    assert app_settings() is first
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.MAX_CPU = 4.0  # type: ignore[misc]
    settings.CONTAINER_MANAGER = {"MAX_CPU": 3.0}
    assert app_settings().MAX_CPU == 3.0


def test_unknown_keys_are_rejected_by_name(settings):
    settings.CONTAINER_MANAGER = {"MAX_MEMORY": 10, "POLL_INTERVALL": 2}
    with pytest.raises(
        ImproperlyConfigured, match=r"Unknown CONTAINER_MANAGER keys: \['MAX_MEMORY', 'POLL_INTERVALL'\]"
    ):
        app_settings()


@pytest.mark.parametrize("value", [None, 0, -1, float("inf"), "2048", True])
def test_maxima_are_never_unlimited(settings, value):
    settings.CONTAINER_MANAGER = {"MAX_MEMORY_MB": value}
    with pytest.raises(ImproperlyConfigured, match="MAX_MEMORY_MB"):
        app_settings()


def test_a_default_above_its_maximum_is_rejected(settings):
    settings.CONTAINER_MANAGER = {"MAX_MEMORY_MB": 128}
    with pytest.raises(ImproperlyConfigured, match=r"DEFAULT_MEMORY_LIMIT_MB.*above.*MAX_MEMORY_MB"):
        app_settings()


def test_a_root_default_user_is_rejected(settings):
    settings.CONTAINER_MANAGER = {"DEFAULT_USER": "0:0"}
    with pytest.raises(ImproperlyConfigured, match="DEFAULT_USER"):
        app_settings()


def test_policy_limits_carry_every_maximum(settings):
    settings.CONTAINER_MANAGER = {
        "MAX_MEMORY_MB": 1024,
        "MAX_CPU": 1.5,
        "MAX_TIMEOUT_SECONDS": 900,
        "MAX_PIDS": 300,
        "MAX_TMPFS_MB": 64,
        "MIN_UID": 2000,
        "DEFAULT_USER": "2000:2000",
        "DEFAULT_TIMEOUT_SECONDS": 600,
        "DEFAULT_PIDS_LIMIT": 100,
        "ALLOWED_REGISTRIES": ["registry.example.com"],
        "MIN_MEMORY_MB": 32,
        "ALLOW_WRITABLE_ROOT": True,
    }
    assert app_settings().policy_limits() == PolicyLimits(
        max_memory_mb=1024,
        max_cpu=1.5,
        max_timeout_seconds=900,
        max_pids=300,
        max_tmpfs_bytes=64 * MIB,
        min_uid=2000,
        allowed_registries=("registry.example.com",),
        min_memory_mb=32,
        allow_writable_root=True,
    )


def test_a_registry_string_is_not_mistaken_for_a_list(settings):
    settings.CONTAINER_MANAGER = {"ALLOWED_REGISTRIES": "registry.example.com"}
    with pytest.raises(ImproperlyConfigured, match=r"ALLOWED_REGISTRIES.*list of strings"):
        app_settings()


@pytest.mark.parametrize("key", ["CLEANUP_AFTER_HARVEST", "ALLOW_WRITABLE_ROOT"])
def test_switches_must_be_booleans(settings, key):
    settings.CONTAINER_MANAGER = {key: "yes"}
    with pytest.raises(ImproperlyConfigured, match=f"{key}.*True or False"):
        app_settings()


def test_manager_id_defaults_to_the_database_identity_and_can_be_set() -> None:
    from django.test import override_settings

    from container_manager.conf import app_settings, database_owner_id
    from container_manager.models import ExecutorHost

    derived = app_settings().manager_id()
    assert derived == database_owner_id()
    assert derived.startswith("db-")
    assert ExecutorHost(name="h", executor_type="mock").to_spec().owner == derived
    with override_settings(CONTAINER_MANAGER={"MANAGER_ID": "billing-prod"}):
        assert ExecutorHost(name="h", executor_type="mock").to_spec().owner == "billing-prod"


@pytest.mark.parametrize("bad", ["", "Has Upper", "x" * 64, "-leading", 5])
def test_manager_id_must_be_a_label_value(bad: object) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from container_manager.conf import app_settings

    with (
        override_settings(CONTAINER_MANAGER={"MANAGER_ID": bad}),
        pytest.raises(ImproperlyConfigured, match="MANAGER_ID"),
    ):
        app_settings()


def test_log_cap_bytes_is_the_default_for_hosts_without_their_own() -> None:
    from django.test import override_settings

    from container_manager.models import ExecutorHost

    with override_settings(CONTAINER_MANAGER={"LOG_CAP_BYTES": 4096}):
        assert ExecutorHost(name="h", executor_type="mock").to_spec().config["log_cap_bytes"] == 4096
        own = ExecutorHost(name="h", executor_type="mock", executor_config={"log_cap_bytes": 100})
        assert own.to_spec().config["log_cap_bytes"] == 100
