"""ExecutorHost and EnvironmentVariableTemplate validation, and secrets kept out of reprs."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError

from container_manager.models import EnvironmentVariableTemplate, ExecutorHost
from container_manager_core.secrets import REDACTED
from tests.factories import make_host, make_job, make_template

pytestmark = pytest.mark.django_db

SECRET = "Registry-Pa55-zq81"  # noqa: S105 - a test-only secret


def host(**fields) -> ExecutorHost:
    values = {
        "name": "h",
        "executor_type": "mock",
        "host_type": "unix",
        "connection_string": "unix:///var/run/docker.sock",
    }
    values.update(fields)
    return ExecutorHost(**values)


@pytest.mark.parametrize(
    ("host_type", "connection_string"),
    [
        ("unix", "unix:///var/run/docker.sock"),
        ("tcp", "tcp://docker.example.com:2376"),
        ("tcp", "tcp://10.0.0.5:2375"),
        ("api", ""),
        ("api", "projects/p/locations/europe-west1"),
    ],
)
def test_valid_connection_strings(host_type, connection_string):
    host(host_type=host_type, connection_string=connection_string).full_clean()


@pytest.mark.parametrize(
    ("connection_string", "expected"),
    [
        ("unix://var/run/docker.sock", "a unix:// address needs an absolute socket path"),
        ("tcp://host", "a tcp:// address must be exactly tcp://HOST:PORT"),
        ("tcp://host:99999", "a tcp:// address must be exactly tcp://HOST:PORT"),
        ("http://host:2375", "it must be unix:///path/to/socket or tcp://HOST:PORT"),
        ("ssh://deploy@host", "it must be unix:///path/to/socket or tcp://HOST:PORT"),
        ("tcp://user@host:2375/path", "a tcp:// address must be exactly tcp://HOST:PORT"),
    ],
)
def test_invalid_docker_addresses_are_named(connection_string, expected):
    # The Docker plugin reads the address (validate_host); the app has no copy of the rule.
    with pytest.raises(ValidationError) as info:
        host(executor_type="docker", connection_string=connection_string).full_clean()
    [error] = info.value.error_dict["connection_string"]
    assert error.code == "connection_string_invalid"
    assert expected in error.message


def test_the_executor_type_must_have_an_installed_plugin():
    with pytest.raises(ValidationError) as info:
        host(executor_type="nomad").full_clean()
    [message] = info.value.message_dict["executor_type"]
    assert message.startswith("No executor plugin for 'nomad'")
    assert "'mock'" in message  # lists what is installed


def test_tls_settings_are_checked():
    with pytest.raises(ValidationError) as info:
        host(tls_enabled=True, tls_client_cert="certs/client.pem").full_clean()
    errors = info.value.message_dict
    assert errors["tls_client_cert"] == ["The TLS file path must be absolute, got 'certs/client.pem'."]
    assert errors["tls_client_key"] == [
        "A TLS client certificate and its key go together: set both or neither."
    ]


def test_plugin_host_rules_become_validation_errors_with_their_codes(caplog):
    caplog.set_level(logging.WARNING, logger="container_manager.security")
    docker = host(executor_type="docker", host_type="tcp", connection_string="tcp://docker.example.com:2375")
    with pytest.raises(ValidationError) as info:
        docker.full_clean()
    [error] = info.value.error_dict["connection_string"]
    assert error.code == "tcp_without_tls"
    assert "tcp_without_tls" in caplog.text
    tls = host(
        executor_type="docker",
        host_type="tcp",
        connection_string="tcp://docker.example.com:2376",
        tls_enabled=True,
        tls_ca_cert="/etc/docker/ca.pem",
        tls_client_cert="/etc/docker/cert.pem",
        tls_client_key="/etc/docker/key.pem",
    )
    tls.full_clean()
    assert tls.to_spec().tls is not None


def test_the_config_must_be_an_object():
    with pytest.raises(ValidationError) as info:
        host(executor_config=["a"]).full_clean()
    assert "must be a JSON object" in info.value.message_dict["executor_config"][0]


def test_secrets_stay_out_of_repr_and_redacted_config():
    h = host(executor_config={"registry_auth": {"username": "bot", "password": SECRET}, "region": "eu"})
    assert SECRET not in repr(h)
    assert SECRET not in repr(h.to_spec())
    assert h.redacted_config == {"registry_auth": {"username": "bot", "password": REDACTED}, "region": "eu"}
    assert h.executor_config["registry_auth"]["password"] == SECRET  # the stored value is untouched


def test_is_available_needs_active_and_healthy():
    assert host().is_available
    assert not host(is_active=False).is_available
    assert not host(healthy=False).is_available


# Environment templates ---------------------------------------------------------------------------


def test_template_text_is_parsed():
    template = EnvironmentVariableTemplate(
        name="t", environment_variables_text='# comment\nA=1\nexport B="two words"\nURL=http://x/#frag\n'
    )
    template.full_clean()
    assert template.get_environment_variables() == {"A": "1", "B": "two words", "URL": "http://x/#frag"}


@pytest.mark.parametrize(
    ("text", "line"),
    [("A=1\nthis is not a variable\n", 2), ("A=1\nB=2\n3X=bad\n", 3), ("A=1\nA=2\n", 2), ('A="open\n', 1)],
)
def test_invalid_template_text_names_the_line(text, line):
    template = EnvironmentVariableTemplate(name="t", environment_variables_text=text)
    with pytest.raises(ValidationError) as info:
        template.full_clean()
    [message] = info.value.message_dict["environment_variables_text"]
    assert message.startswith(f"Line {line}: ")


def test_job_overrides_win_over_the_template(db):
    template = make_template("t", "A=template\nB=template\n")
    job = make_job(host=make_host(), environment_template=template, environment_vars={"B": "job"})
    assert job.get_all_environment_variables() == {"A": "template", "B": "job"}
