"""The mock plugin's typed host config: the keys it reads, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from mock_executor.config import KNOWN_KEYS, MockHostConfig, mock_config, read_config
from mock_executor.plugin import plugin

from container_manager_core.errors import ExecutorUnavailable, HostMisconfigured
from container_manager_core.types import HostSpec


def spec(**config: Any) -> HostSpec:
    return HostSpec(name="m1", executor_type="mock", config=config)


def test_the_keys_it_reads_are_typed() -> None:
    assert mock_config(spec()) == MockHostConfig()
    assert mock_config(spec(unreachable=True, log_cap_bytes=4096)).unreachable is True
    assert mock_config(spec(unhealthy="disk full", allowed_registries=["ghcr.io"])).unhealthy == "disk full"


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"timout": 5}, "mock_config_unknown_key"),
        ({"privileged": True}, "mock_config_unknown_key"),
        ({"unreachable": "yes"}, "mock_config_invalid_value"),
        ({"unhealthy": 1}, "mock_config_invalid_value"),
        ({"log_cap_bytes": True}, "mock_config_invalid_value"),
        ({"memory_mb": 0}, "mock_config_invalid_value"),
        ({"memory_mb": 1.5}, "mock_config_invalid_value"),
        ({"cpus": float("nan")}, "mock_config_invalid_value"),
        ({"cpus": -1}, "mock_config_invalid_value"),
        ({"cpus": "2"}, "mock_config_invalid_value"),
    ],
)
def test_unknown_keys_and_wrong_types_are_refused(config: dict[str, Any], code: str) -> None:
    [violation] = read_config(spec(**config)).violations
    assert violation.code == code
    assert plugin.validate_host(spec(**config)) == [violation]
    if code == "mock_config_unknown_key":
        assert ", ".join(sorted(KNOWN_KEYS)) in violation.message


def test_a_refused_config_is_a_host_fault_when_used() -> None:
    with pytest.raises(HostMisconfigured, match="'timout' is unknown"):
        plugin.list_executions(spec(timout=5))
    assert isinstance(HostMisconfigured("x"), ExecutorUnavailable)
    assert plugin.get_health_status(spec(timout=5)).healthy is False


def test_its_health_reports_the_configured_size() -> None:
    from container_manager_core.capacity import EngineCapacity, read_capacity

    assert read_capacity(plugin.get_health_status(spec(memory_mb=4096, cpus=2.5)).details) == EngineCapacity(
        4096, 2.5
    )
    assert read_capacity(plugin.get_health_status(spec()).details) == EngineCapacity(None, None)
