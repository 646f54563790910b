"""The Cloud Run executor, found through its entry point, passes the core's contract kit."""

from __future__ import annotations

import pytest

from container_manager_core.testing import ExecutorContract, JobFactory
from container_manager_core.types import HostSpec
from tests.cloudrun.conftest import make_scenario_job
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun


@pytest.fixture
def contract_host(fake_cloudrun: FakeCloudRun) -> HostSpec:
    return cloudrun_host_spec(fake_cloudrun)


@pytest.fixture
def contract_job() -> JobFactory:
    return make_scenario_job


class TestCloudRunContract(ExecutorContract):
    pass
