"""The Docker plugin's typed host config: one constructor, used when a host is saved, when a worker loads
it, and whenever the plugin reads a setting."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
from docker_executor.config import (
    KNOWN_KEYS,
    MAX_API_VERSION,
    MAX_LOG_CAP_BYTES,
    MIN_API_VERSION,
    DockerHostConfig,
    docker_config,
    read_config,
)
from docker_executor.connection import connection_key
from docker_executor.engine_errors import engine_call
from docker_executor.payload import build_create_payload
from docker_executor.plugin import plugin

from container_manager_core.errors import ExecutorError, HostMisconfigured
from container_manager_core.plugins import PluginManager
from container_manager_core.types import HostSpec, JobSpec
from docs import reference


def spec(**config: Any) -> HostSpec:
    return HostSpec(name="d1", executor_type="docker", connection_string="", config=config)


def problems(**config: Any) -> list[tuple[str, str]]:
    return [(v.code, v.message) for v in read_config(spec(**config)).violations]


def test_a_usable_config_has_no_problem():
    config = {
        "timeout": 30,
        "health_timeout": 2.5,
        "pull_timeout": 600,
        "api_version": "1.41",
        "registry_auth": {"username": "bot", "password": "x"},
        "log_cap_bytes": 1024,
        "log_max_size": "10m",
        "log_max_file": 5,
        "use_init": True,
        "default_network": "none",
        "allow_insecure_tcp": False,
        "allow_insecure_tls": False,
        "allowed_registries": ["registry.example.com"],
    }
    assert set(config) == KNOWN_KEYS
    assert problems(**config) == []
    assert problems() == []
    assert problems(api_version="auto", log_max_file="3", allowed_registries="ghcr.io") == []


@pytest.mark.parametrize("value", [-1, 0, MAX_LOG_CAP_BYTES + 1, 1.5, "1024", True, None])
def test_log_cap_bytes_is_a_positive_whole_number_within_bounds(value: Any):
    [(code, message)] = problems(log_cap_bytes=value)
    assert code == "docker_config_invalid_log_cap"
    assert message == (
        f"Docker host 'd1': log_cap_bytes must be a whole number of bytes from 1 to {MAX_LOG_CAP_BYTES}, "
        f"got {value!r}."
    )


@pytest.mark.parametrize("value", ["1.24", "1.12", "1.99", "2.0"])
def test_api_versions_outside_the_plugins_range_are_refused(value: str):
    [(code, message)] = problems(api_version=value)
    assert code == "docker_config_invalid_api_version"
    assert f"api_version {value!r} is outside the versions this plugin supports" in message
    assert f"({MIN_API_VERSION} to {MAX_API_VERSION})" in message


@pytest.mark.parametrize("value", ["v1.41", "1.41.0", "latest", 1.41, None])
def test_an_api_version_that_is_no_version_is_refused(value: Any):
    [(code, message)] = problems(api_version=value)
    assert code == "docker_config_invalid_api_version"
    assert "api_version must be 'auto' or a version such as" in message


def test_the_supported_range_builds_every_request():
    # The bounds are real: each version in range can build a request with every setting the plugin sends.
    job = JobSpec(job_id="j", image="busybox", memory_limit_mb=32, cpu_limit=0.5, pids_limit=32, user="1000")
    low, high = (int(v.split(".")[1]) for v in (MIN_API_VERSION, MAX_API_VERSION))
    for minor in range(low, high + 1):
        build_create_payload(spec(), job, f"1.{minor}")
    with pytest.raises(docker.errors.InvalidVersion):
        build_create_payload(spec(), job, "1.24")


@pytest.mark.parametrize("key", ["timeout", "health_timeout", "pull_timeout"])
@pytest.mark.parametrize("value", [0, -5, float("inf"), float("nan"), "30", True])
def test_timeouts_are_positive_numbers(key: str, value: Any):
    [(code, message)] = problems(**{key: value})
    assert code == "docker_config_invalid_timeout"
    assert f"{key} must be a positive number of seconds" in message


def test_unknown_keys_are_refused_naming_the_known_ones():
    [(code, message)] = problems(timeuot=30)
    assert code == "docker_config_unknown_key"
    assert message.startswith("Docker host 'd1': the config key 'timeuot' is unknown; known keys are ")
    assert ", ".join(sorted(KNOWN_KEYS)) in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allow_insecure_tcp", 1),
        ("registry_auth", "bot:pass"),
        ("default_network", ""),
        ("allowed_registries", [1]),
    ],
)
def test_other_keys_have_their_types(key: str, value: Any):
    [(code, message)] = problems(**{key: value})
    assert code == "docker_config_invalid_value"
    assert message.startswith(f"Docker host 'd1': {key} must be ")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("log_max_size", 10, "log_limits_invalid"),
        ("log_max_file", 0, "log_limits_invalid"),
        ("use_init", False, "init_disabled"),
    ],
)
def test_engine_log_and_init_settings_are_read_by_the_guards_rules(key: str, value: Any, expected: str):
    """One reading of these keys: the one the payload guard applies (docker_executor.rules)."""
    [(code, _message)] = problems(**{key: value})
    assert code == expected


def test_every_problem_is_reported_at_once():
    codes = [code for code, _ in problems(log_cap_bytes=-1, api_version="1.24", timeout=0, nope=1)]
    assert sorted(codes) == [
        "docker_config_invalid_api_version",
        "docker_config_invalid_log_cap",
        "docker_config_invalid_timeout",
        "docker_config_unknown_key",
    ]


def test_the_known_keys_are_the_keys_the_code_reads():
    # Every key has a typed field, and a key read from the raw mapping (the guard's rules, the core
    # policy) is a known one: else a working host would be refused, or a typo read.
    assert reference.docker_config_keys() == KNOWN_KEYS
    assert reference.raw_docker_config_reads() <= KNOWN_KEYS


def test_the_typed_config_holds_the_values_and_the_safe_defaults():
    config = docker_config(
        spec(timeout=2.5, api_version="auto", log_max_file="3", allowed_registries="ghcr.io", use_init=True)
    )
    assert (config.timeout, config.api_version, config.log_max_file) == (2.5, None, 3)
    assert config.allowed_registries == ("ghcr.io",)
    defaults = docker_config(spec())
    assert defaults == DockerHostConfig()
    assert (defaults.use_init, defaults.allow_insecure_tcp, defaults.allow_insecure_tls) == (
        True,
        False,
        False,
    )
    assert defaults.default_network == "bridge"


def test_a_config_with_problems_is_never_built():
    verdict = read_config(spec(timout=5, use_init=False))
    assert verdict.config is None
    with pytest.raises(HostMisconfigured, match="the config key 'timout' is unknown"):
        docker_config(spec(timout=5))
    with pytest.raises(HostMisconfigured, match="use_init may only be true"):
        docker_config(spec(use_init=False))


def test_registry_auth_is_never_shown():
    config = docker_config(spec(registry_auth={"username": "bot", "password": "hunter2"}))
    assert "hunter2" not in repr(config)
    [(_code, message)] = problems(registry_auth="bot:hunter2")
    assert "hunter2" not in message


def test_the_plugin_validates_docker_hosts_only_through_the_hook():
    manager = PluginManager(load_entry_points=False)
    manager.register(plugin, name="docker")
    [violation] = manager.validate_host(spec(log_cap_bytes=-1))
    assert (violation.code, violation.field) == ("docker_config_invalid_log_cap", "executor_config")
    other = HostSpec(name="m", executor_type="mock", connection_string="", config={"log_cap_bytes": -1})
    assert manager.validate_host(other) == []


def test_auto_asks_the_engine_like_no_setting():
    assert connection_key(spec(api_version="auto"), "calls", 30).api_version is None
    assert connection_key(spec(), "calls", 30).api_version is None
    assert connection_key(spec(api_version="1.41"), "calls", 30).api_version == "1.41"


def _api_error(text: str) -> docker.errors.APIError:
    return docker.errors.APIError("400 Client Error", explanation=text)


@pytest.mark.parametrize(
    "text",
    [
        "client version 1.24 is too old. Minimum supported API version is 1.44, please upgrade your client",
        "client version 1.45 is too new. Maximum supported API version is 1.41",
    ],
)
def test_an_engine_refusing_the_api_version_is_a_host_fault(text: str):
    with pytest.raises(HostMisconfigured) as info, engine_call(spec(api_version="1.41"), "list executions"):
        raise _api_error(text)
    assert str(info.value) == (
        f"Docker host 'd1' refused to list executions in the API version it is configured with: {text}. "
        "Set api_version in the host's executor_config to a version the engine supports, or to 'auto'."
    )


def test_other_engine_refusals_stay_executor_errors():
    with pytest.raises(ExecutorError) as info, engine_call(spec(), "list executions"):
        raise _api_error("no such image")
    assert not isinstance(info.value, HostMisconfigured)
