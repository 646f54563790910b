"""Count a process's SQL queries and Docker API requests; write the totals as JSON at exit."""

from __future__ import annotations

import atexit
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

_counts: Counter[str] = Counter()
_EXECUTOR_CALLS = ("launch_job", "wait_for_exit", "check_status", "get_logs", "get_usage", "cleanup")
_lock = threading.Lock()


def _count(key: str) -> None:
    with _lock:
        _counts[key] += 1


def _add_ms(key: str, seconds: float) -> None:
    with _lock:
        _counts[key] += round(seconds * 1000)


def _time_cpu(module_name: str, class_name: str, *methods: str) -> None:
    """Add each method's CPU time (of the calling thread) under "cpu_ms <method>"."""
    import importlib

    cls = getattr(importlib.import_module(module_name), class_name)
    for name in methods:
        original = getattr(cls, name)

        def timed(*args: Any, __original: Any = original, __name: str = name, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return __original(*args, **kwargs)
            finally:
                _add_ms("cpu_ms " + __name, time.thread_time() - started)

        setattr(cls, name, timed)


def _add_us(key: str, seconds: float) -> None:
    with _lock:
        _counts[key] += round(seconds * 1_000_000)


# Set on the thread running a claim, so the statements it sends are timed as the claim's.
_claiming = threading.local()


def _count_claims() -> None:
    """Count the jobs each claim wins ("claimed") and time its statements ("sql_us claim")."""
    from container_manager.worker import claims

    original = claims.claim_jobs

    def counted(*args: Any, **kwargs: Any) -> Any:
        _claiming.on = True
        try:
            result = original(*args, **kwargs)
        finally:
            _claiming.on = False
        with _lock:
            _counts["claimed"] += len(result.won)
        return result

    claims.claim_jobs = counted


def install(path: str) -> None:
    """Count every SQL query and every HTTP request to a Docker Engine from now on."""
    import requests
    from django.db.backends.signals import connection_created

    original_send = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if (request.url or "").startswith("http+docker://"):
            path_only = (request.url or "").split("?", 1)[0].split("/v1.", 1)[-1]
            # "41/containers/<id>/start" -> "containers/start": one key per kind of call.
            parts = [p for p in path_only.split("/")[1:] if len(p) < 40]
            key = "docker:" + (request.method or "") + " " + "/".join(parts)
            _count(key)
            started = time.perf_counter()
            try:
                return original_send(self, request, **kwargs)
            finally:
                _add_ms("ms " + key, time.perf_counter() - started)
        return original_send(self, request, **kwargs)

    requests.Session.send = send  # type: ignore[method-assign]

    def on_connection(*, connection: Any, **kwargs: Any) -> None:
        # The wrapper object outlives its database connections: count through it once.
        if getattr(connection, "_bench_counted", False):
            return
        connection._bench_counted = True
        # The first connection comes after the apps are loaded: the worker's classes can be wrapped now.
        _time_cpu("container_manager_core.plugins", "PluginManager", *_EXECUTOR_CALLS)
        _time_cpu("container_manager.worker.worker", "Worker", "_step", "_claim")
        # The running and exit writes, recorded from the runners' reports.
        _time_cpu("container_manager.worker.reports", "Recorder", "_running", "_exit")

        _count_claims()

        def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            _count("sql:" + sql.split(None, 1)[0].upper())
            if not getattr(_claiming, "on", False):
                return execute(sql, params, many, context)
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                _add_us("sql_us claim", time.perf_counter() - started)

        connection.execute_wrappers.append(wrapper)

    connection_created.connect(on_connection, weak=False)

    def write() -> None:
        Path(path).write_text(json.dumps(dict(_counts), indent=1, sort_keys=True))

    atexit.register(write)
