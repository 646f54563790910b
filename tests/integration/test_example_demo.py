"""The README's main job runs a real container job end to end on SQLite and the local Docker daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dockertools import docker_client_or_fail

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_a_job_to_completion(tmp_path: Path) -> None:
    docker_client_or_fail().close()
    env = {**os.environ, "CM_EXAMPLE_DATA_DIR": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "example.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "status:        completed (completed), exit code 0" in out
    assert "clean output:  hello from job hello as uid 1001" in out
    assert "parsed output: {'answer': 42}" in out
    assert "MiB peak" in out, "usage is sampled while the job runs"
    assert (tmp_path / "example.sqlite3").exists()
