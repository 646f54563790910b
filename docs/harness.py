"""The machinery that runs the documentation's examples; ``docs/conftest.py`` wires it into pytest.

Conventions (enforced by ``docs/test_docs_reference.py``):

- ```` ```python ```` blocks (and ``<!-- invisible-code-block: python -->`` comments) run in the
  document's shared namespace, in order, on the test database, with the Docker executor on the local
  engine. A block starting with ``>>>`` is a doctest: its output is compared (``...`` matches
  anything, runs of whitespace compare equal). A block whose first line is ``# settings.py`` is a
  settings file: it runs in a namespace of its own, and its ``CONTAINER_MANAGER`` must pass the
  app's own settings validation and system check.
- ```` ```bash ```` blocks run with ``bash -euo pipefail`` in a project directory holding a standard
  ``manage.py`` (``DJANGO_SETTINGS_MODULE=docs.settings``, the same database as the Python blocks),
  with ``.venv/bin`` first on ``PATH``, and must exit 0.
- Nothing else runs: ```` ```console ```` holds shell commands that cannot run here, each preceded
  by an italic "*Not run by the test suite: <reason>.*" line; ``text``, ``json``, ``toml``, ``ini``,
  ``yaml``, ``dockerfile`` and ``mermaid`` hold data and diagrams.
"""

# ruff: noqa: S101, S603

from __future__ import annotations

import doctest
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from django.db import connections
from django.test import override_settings
from sybil import Example
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.abstract.codeblock import PythonDocTestOrCodeBlockParser
from sybil.parsers.markdown import CodeBlockParser

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
SETTINGS_MARKER = "# settings.py"
BASH_TIMEOUT_SECONDS = 90
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
DOCS_SETTINGS = "docs.settings"
BASH = shutil.which("bash") or "/bin/bash"
# The settings the documents run with that are not defaults: a worker run with --once ends up to
# one POLL_INTERVAL after its last job, so a shorter interval keeps the examples quick; the engine
# that runs the examples does not remap users, so user namespaces cannot be required of it.
DOCS_CONTAINER_MANAGER = {"POLL_INTERVAL": 0.1, "REQUIRE_USER_NAMESPACES": False}

# The manage.py Django's startproject writes, pointed at the docs settings.
MANAGE_PY = """\
#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""
NETWORK_CREATE = re.compile(r"docker network create(?: [^\n]*?)? ([a-z0-9][a-z0-9_.-]*)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class DocsRun:
    """What the evaluators of one document need: where shell examples run and with what environment."""

    project_dir: Path
    env: dict[str, str]


# Evaluators ---------------------------------------------------------------------------------------


def check_settings_block(example: Example) -> None:
    """Run a ``# settings.py`` block on its own and validate what it configures, as Django would."""
    from container_manager.checks import check_settings
    from container_manager.conf import app_settings

    namespace: dict[str, Any] = {"__name__": "settings"}
    code = compile(example.parsed, str(example.path), "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - the documentation's own example
    if "INSTALLED_APPS" in namespace:
        assert "container_manager" in namespace["INSTALLED_APPS"], "INSTALLED_APPS lacks container_manager"
    if "CONTAINER_MANAGER" in namespace:
        with override_settings(CONTAINER_MANAGER=namespace["CONTAINER_MANAGER"]):
            app_settings().policy_limits()  # raises ImproperlyConfigured on any bad key or value
            errors = check_settings()
            assert not errors, errors
    if "TASKS" in namespace:
        from django.tasks import task_backends

        with override_settings(TASKS=namespace["TASKS"]):
            errors = [error for backend in task_backends.all() for error in backend.check()]
            assert not errors, errors


class DocsPythonEvaluator(PythonEvaluator):
    """Python blocks run in the document namespace; settings blocks are checked on their own."""

    def __call__(self, example: Example) -> None:
        if example.parsed.lstrip().startswith(SETTINGS_MARKER):
            check_settings_block(example)
            return
        super().__call__(example)


class PythonParser(PythonDocTestOrCodeBlockParser):
    """```python blocks: plain code, doctests (``>>>``) or settings files."""

    codeblock_parser_class = CodeBlockParser

    def __init__(self) -> None:
        super().__init__(doctest_optionflags=DOCTEST_FLAGS)
        self.codeblock_parser = CodeBlockParser("python", DocsPythonEvaluator())


def run_bash(example: Example) -> None:
    """Run a ```bash block in the project directory; fail with its output unless it exits 0."""
    run: DocsRun = example.namespace["_docs"]
    try:
        result = subprocess.run(
            [BASH, "-euo", "pipefail", "-c", example.parsed],
            cwd=run.project_dir,
            env=run.env,
            capture_output=True,
            text=True,
            timeout=BASH_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"The shell example did not finish in {BASH_TIMEOUT_SECONDS} s:\n{example.parsed}"
        ) from exc
    if result.returncode != 0:
        raise AssertionError(
            f"The shell example exited {result.returncode}:\n{example.parsed}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )


def stop_fakes(namespace: dict[str, Any]) -> None:
    """Stop any fake service a document started and did not stop (after a failed example)."""
    from tests.fakes import FakeCloudRun

    for value in list(namespace.values()):
        if isinstance(value, FakeCloudRun):
            value.stop()


def parsers() -> list[Any]:
    """Return the parsers of the documents: Python (code, doctest, settings) and bash."""
    return [PythonParser(), CodeBlockParser("bash", run_bash)]


# Per-document state ------------------------------------------------------------------------------


@contextmanager
def shared_database(directory: Path) -> Iterator[str]:
    """Yield the name of a database both this process and shell examples can open.

    PostgreSQL's test database already is one. SQLite's in-memory test database is not: it is copied
    to a file for the document, and the in-memory one is put back (untouched) afterwards.
    """
    connection = connections["default"]
    if connection.vendor != "sqlite" or not getattr(connection, "is_in_memory_db", lambda: False)():
        yield str(connection.settings_dict["NAME"])
        return
    connection.ensure_connection()
    path = directory / "docs.sqlite3"
    target = sqlite3.connect(path)
    try:
        connection.connection.backup(target)
    finally:
        target.close()
    in_memory_name = connection.settings_dict["NAME"]
    in_memory = connection.connection
    connection.connection = None  # detach without closing: closing would drop the in-memory database
    connection.settings_dict["NAME"] = str(path)
    try:
        yield str(path)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = in_memory_name
        connection.connection = in_memory


def remove_job_containers(client: docker.DockerClient, job_ids: list[str], execution_ids: list[str]) -> None:
    """Remove the containers of this document's jobs (and only those), even if an example failed."""
    ids = set(execution_ids)
    for job_id in job_ids:
        found = client.api.containers(all=True, filters={"label": f"container_manager.job_id={job_id}"})
        ids.update(container["Id"] for container in found)
    for container_id in ids:
        try:
            client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: a worker's own cleanup is removing it right now
                raise


def remove_networks(client: docker.DockerClient, names: set[str]) -> None:
    """Remove networks a document created with ``docker network create`` and left behind."""
    for name in sorted(names):
        try:
            client.api.remove_network(name)
        except docker.errors.NotFound:
            continue


def flush_app_tables() -> tuple[list[str], list[str]]:
    """Delete every row of the app's tables; return the deleted jobs' ids and execution ids."""
    from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost

    rows = list(ContainerJob.objects.values_list("pk", "execution_id"))
    ContainerJob.objects.all().delete()
    EnvironmentVariableTemplate.objects.all().delete()
    ExecutorHost.objects.all().delete()
    return [str(pk) for pk, _ in rows], [eid for _, eid in rows if eid]


@contextmanager
def restored_signals() -> Iterator[None]:
    """Put back every receiver list of the app's signals, so a document's receivers do not leak."""
    from django.db.models import signals as model_signals

    from container_manager import signals

    watched = [
        signals.job_status_changed,
        signals.job_started,
        signals.job_finished,
        model_signals.post_save,
        model_signals.pre_save,
    ]
    saved = [list(signal.receivers) for signal in watched]
    try:
        yield
    finally:
        for signal, receivers in zip(watched, saved, strict=True):
            with signal.lock:
                signal.receivers = receivers
                signal.sender_receivers_cache.clear()
