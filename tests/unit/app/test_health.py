"""check_host: ask the plugin, never raise, save the health fields with one UPDATE, log a line."""

from __future__ import annotations

import logging

import pytest

from container_manager.health import check_host
from container_manager.models import ExecutorHost
from tests.factories import make_host

pytestmark = pytest.mark.django_db


def test_a_healthy_host_is_recorded(host, django_assert_num_queries, caplog):
    caplog.set_level(logging.INFO, logger="container_manager.health")
    ExecutorHost.objects.filter(pk=host.pk).update(healthy=False, last_health_error="old")
    host.refresh_from_db()
    with django_assert_num_queries(1):
        status = check_host(host)
    assert status.healthy
    saved = ExecutorHost.objects.get(pk=host.pk)
    assert (saved.healthy, saved.last_health_error) == (True, "")
    assert saved.last_health_check is not None
    assert saved.health_response_time == status.response_time
    assert (host.healthy, host.last_health_check) == (True, saved.last_health_check)
    assert "Host 'mock-1' is healthy" in caplog.text


def test_a_routine_healthy_answer_is_debug_detail(host, caplog):
    """Every HEALTH_CHECK_INTERVAL per host: at the worker's default INFO level it would drown the job events."""
    check_host(host)
    caplog.set_level(logging.INFO, logger="container_manager.health")
    check_host(host)
    assert "is healthy" not in caplog.text
    caplog.set_level(logging.DEBUG, logger="container_manager.health")
    check_host(host)
    assert "Host 'mock-1' is healthy" in caplog.text


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"unhealthy": "disk full"}, "disk full"),
        ({"unreachable": True}, "Mock host 'sick' is configured as unreachable."),
    ],
)
def test_an_unhealthy_host_is_recorded_with_its_error(db, config, error, caplog):
    host = make_host("sick", executor_config=config)
    status = check_host(host)
    assert (status.healthy, status.error) == (False, error)
    saved = ExecutorHost.objects.get(pk=host.pk)
    assert (saved.healthy, saved.last_health_error) == (False, error)
    assert [r.levelno for r in caplog.records if r.name == "container_manager.health"] == [logging.WARNING]


def test_a_missing_plugin_is_unhealthy_not_an_exception(db):
    host = make_host("orphan", executor_type="nomad")
    status = check_host(host)
    assert not status.healthy
    assert str(status.error).startswith("No executor plugin for 'nomad'")
    assert not ExecutorHost.objects.get(pk=host.pk).healthy
