"""Who may read the metrics: nobody unless the project includes the URLs, then the settings' rule."""

from __future__ import annotations

import importlib
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from container_manager.conf import METRICS_TOKEN_PATTERN, AppSettings
from container_manager.metrics.access import address_allowed, token_matches
from tests.metricstools import scrape

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token-0123456789"  # noqa: S105
TOKEN_CHARS = st.sampled_from("ABCXYZabcxyz0189-._~+/")
TOKENS = st.text(TOKEN_CHARS, min_size=16, max_size=64).filter(METRICS_TOKEN_PATTERN.fullmatch)


def test_the_endpoint_exists_only_where_the_project_includes_it() -> None:
    assert scrape().status_code == 200
    assert b"container_manager_jobs" in scrape().content
    assert scrape(urlconf="tests.urls").status_code == 404


def test_with_a_token_set_a_scrape_without_it_is_refused(settings) -> None:
    settings.CONTAINER_MANAGER = {"METRICS_TOKEN": TOKEN}
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token-0123456789"},
        {"HTTP_AUTHORIZATION": TOKEN},
    ):
        refused = scrape(**headers)
        assert refused.status_code == 403
        assert b"METRICS_TOKEN" in refused.content
        assert TOKEN.encode() not in refused.content
        assert b"container_manager_jobs" not in refused.content
    allowed = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed.status_code == 200
    assert b"container_manager_jobs" in allowed.content


def test_with_networks_set_only_their_addresses_may_scrape(settings) -> None:
    settings.CONTAINER_MANAGER = {"METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8", "2001:db8::/32"]}
    assert scrape(REMOTE_ADDR="10.20.30.40").status_code == 200
    assert scrape(REMOTE_ADDR="2001:db8::7").status_code == 200
    assert scrape(REMOTE_ADDR="::ffff:10.1.1.1").status_code == 200  # IPv4 on a dual-stack socket
    for outside in ("203.0.113.9", "127.0.0.1", "2001:db9::1", "not-an-address", ""):
        assert scrape(REMOTE_ADDR=outside).status_code == 403, outside


def test_with_both_set_both_must_be_met(settings) -> None:
    settings.CONTAINER_MANAGER = {"METRICS_TOKEN": TOKEN, "METRICS_ALLOWED_NETWORKS": ["192.0.2.0/24"]}
    bearer = f"Bearer {TOKEN}"
    assert scrape(REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION=bearer).status_code == 200
    assert scrape(REMOTE_ADDR="192.0.2.1").status_code == 403
    assert scrape(REMOTE_ADDR="198.51.100.1", HTTP_AUTHORIZATION=bearer).status_code == 403


def test_only_reads_are_served() -> None:
    from django.test import Client, override_settings

    with override_settings(ROOT_URLCONF="tests.metrics_urls"):
        assert Client().post("/metrics/").status_code == 405
        assert Client().head("/metrics/").status_code == 200


@given(token=TOKENS, header=st.text(max_size=80))
def test_only_bearer_and_the_exact_token_match(token: str, header: str) -> None:
    assert token_matches(f"Bearer {token}", token)
    assert token_matches(f"bearer {token}", token)
    assert token_matches(header, token) == (
        header.partition(" ")[0].lower() == "bearer" and header.partition(" ")[2].strip() == token
    )
    assert not token_matches(token, token)
    assert not token_matches(f"Basic {token}", token)


def _refusal(value: str) -> str:
    with pytest.raises(ImproperlyConfigured) as refused:
        AppSettings(METRICS_TOKEN=value)
    return str(refused.value)


@given(
    value=st.text(max_size=15)
    | st.text(st.sampled_from(" \n:@\"'"), min_size=1, max_size=30).map(lambda s: "a" * 16 + s)
)
def test_a_weak_or_malformed_token_is_refused_without_quoting_it(value: str) -> None:
    message = _refusal(value)
    assert "METRICS_TOKEN" in message
    # The message tells the length alone: any other refused value of that length reads the same.
    assert message == _refusal(" " * len(value))


def test_the_token_is_never_in_the_settings_repr() -> None:
    assert TOKEN not in repr(AppSettings(METRICS_TOKEN=TOKEN))


@pytest.mark.parametrize("networks", [["10.0.0.1/8"], ["10.0.0.0/33"], ["localhost"], "10.0.0.0/8", [""]])
def test_a_network_that_is_not_one_is_refused_with_its_name(networks: object) -> None:
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_NETWORKS"):
        AppSettings(METRICS_ALLOWED_NETWORKS=networks)  # type: ignore[arg-type]


def test_networks_are_kept_as_a_tuple() -> None:
    settings = AppSettings(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8", "::1"])  # type: ignore[arg-type]
    assert settings.METRICS_ALLOWED_NETWORKS == ("10.0.0.0/8", "::1")
    assert address_allowed("::1", settings.METRICS_ALLOWED_NETWORKS)
    assert not address_allowed("::2", settings.METRICS_ALLOWED_NETWORKS)


def test_without_prometheus_client_the_include_says_which_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "container_manager.metrics.urls", raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"container-manager-django\[metrics\]"):
        importlib.import_module("container_manager.metrics.urls")
