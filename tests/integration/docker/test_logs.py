"""A log flood is capped to head and tail with the dropped bytes counted, in bounded memory."""

from __future__ import annotations

import time
import tracemalloc

import docker
import pytest
from docker_executor.plugin import DockerExecutor

from container_manager_core.logtext import truncation_notice
from container_manager_core.types import HostSpec
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker

LINES = 50_000
LINE = "x" * 999 + "\n"  # 1000 bytes, so the flood is exactly 50 MB
HEAD, TAIL = "HEAD-MARKER\n", "TAIL-MARKER\n"
CAP = 1024 * 1024


def test_fifty_megabyte_flood_is_capped_head_and_tail(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    # Engine log files big enough to hold the whole flood, so the true head is still there to keep.
    host = HostSpec(
        docker_host.name,
        "docker",
        docker_host.connection_string,
        config={**docker_host.config, "log_cap_bytes": CAP, "log_max_size": "30m", "log_max_file": 3},
    )
    script = (
        f"printf '{HEAD[:-1]}\\n'; L=$(head -c 999 /dev/zero | tr '\\0' x); "
        f"yes \"$L\" | head -n {LINES}; printf '{TAIL[:-1]}\\n'; echo only-stderr >&2"
    )
    execution = executor.launch_job(host, make_job(script))
    wait_exited(executor, host, execution.execution_id, timeout=60)
    log_config = docker_client.api.inspect_container(execution.execution_id)["HostConfig"]["LogConfig"]
    assert log_config["Config"] == {"max-size": str(30 * 1024**2), "max-file": "3"}  # 30m, in bytes

    tracemalloc.start()
    started = time.monotonic()
    try:
        logs = executor.get_logs(host, execution.execution_id, timestamps=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started

    total = len(HEAD) + LINES * len(LINE) + len(TAIL)
    assert logs.stdout_dropped_bytes == total - CAP
    assert logs.stderr_dropped_bytes == 0
    assert logs.stderr == "only-stderr\n"
    assert logs.stdout.startswith(HEAD + LINE)
    assert logs.stdout.endswith(LINE + TAIL)
    assert truncation_notice(total - CAP) in logs.stdout
    assert len(logs.stdout) == CAP + len(truncation_notice(total - CAP))
    # Streamed, not buffered: the peak is a few copies of the 1 MiB cap, never the 50 MB flood.
    assert peak < 8 * CAP, f"reading the logs peaked at {peak} bytes"
    assert elapsed < 30


def test_output_bytes_become_storable_text_the_cap_splitting_no_character(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    host = HostSpec(
        docker_host.name,
        "docker",
        docker_host.connection_string,
        config={**docker_host.config, "log_cap_bytes": 9},
    )
    # The engine's json-file driver writes invalid UTF-8 (\377) as U+FFFD itself; NUL reaches us.
    script = r"""printf 'a\000b\377c'; E=$(printf '\303\251'); printf "$E$E$E$E$E$E$E$E$E$E" >&2"""
    execution = executor.launch_job(host, make_job(script))
    wait_exited(executor, host, execution.execution_id)
    logs = executor.get_logs(host, execution.execution_id, timestamps=False)
    assert (logs.stdout, logs.stdout_dropped_bytes, logs.stdout_replaced_bytes) == ("a\u2400b\ufffdc", 0, 1)
    # 20 bytes of "é": a head of 5 holds two and half a third, a tail of 4 two: the half is dropped.
    assert logs.stderr == "éé" + truncation_notice(20 - 8) + "éé"
    assert (logs.stderr_dropped_bytes, logs.stderr_replaced_bytes) == (20 - 8, 0)
