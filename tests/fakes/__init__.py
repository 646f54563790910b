"""In-process fakes of external services, speaking their real wire protocols."""

from __future__ import annotations

from tests.fakes.cloudrun_server import FakeCloudRun, cloudrun_host_spec, start_fake_cloudrun

__all__ = ["FakeCloudRun", "cloudrun_host_spec", "start_fake_cloudrun"]
