"""Run every example of the documentation with sybil (the conventions are in ``docs/harness.py``).

Each document gets its own database state: the ``_docs`` fixture is scoped to the document (sybil
makes each file a module). After the document it removes the containers of the document's jobs,
deletes every row of the app's tables, restores the signals' receivers and reloads the plugin
manager. It registers no host and injects no names: what an example needs, the document creates
where the reader can see it. The one setting it changes, for speed, is ``POLL_INTERVAL`` (each
document's introduction says so).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from sybil import Sybil
from sybil.integration.pytest import SybilItem

from docs.harness import (
    DOCS_CONTAINER_MANAGER,
    DOCS_SETTINGS,
    MANAGE_PY,
    NETWORK_CREATE,
    ROOT,
    VENV_BIN,
    DocsRun,
    flush_app_tables,
    parsers,
    remove_job_containers,
    remove_networks,
    restored_signals,
    shared_database,
    stop_fakes,
)

pytest_collect_file = Sybil(
    parsers=parsers(),
    patterns=["*.md"],
    fixtures=["_docs"],
    teardown=stop_fakes,
).pytest()


# The database ------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Declare that examples use the database, so pytest-django creates the test database for them."""
    for item in items:
        if isinstance(item, SybilItem):
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(autouse=True)
def _django_db_marker() -> None:
    """Replace pytest-django's per-test database wrapping for the documents' examples.

    Examples of one document build on each other (a host, then a job, then the worker, then the
    result) and shell examples read the same rows from another process, so nothing may be rolled
    back or flushed between them; ``_docs`` gives each document a clean slate instead.
    """


@pytest.fixture(scope="module")
def _docs(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DocsRun]:
    """Give one document the example image, a database shared with its shell examples, and a clean slate."""
    from docker_executor.test_image import DEFAULT_TAG, build_image

    from container_manager.executors.registry import reset_plugin_manager
    from tests.dockertools import docker_client_or_fail

    client = docker_client_or_fail()
    build_image(
        client, DEFAULT_TAG
    )  # the image the documents' jobs use, as `container-manager-test-image` builds it
    document = Path(str(request.node.path))
    networks = set(NETWORK_CREATE.findall(document.read_text()))
    project_dir = tmp_path_factory.mktemp("project")
    (project_dir / "manage.py").write_text(MANAGE_PY)
    with (
        django_db_blocker.unblock(),
        shared_database(project_dir) as db_name,
        restored_signals(),
        override_settings(CONTAINER_MANAGER=DOCS_CONTAINER_MANAGER),
    ):
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": DOCS_SETTINGS,
            "CM_DOCS_DB_NAME": db_name,
            "PYTHONUNBUFFERED": "1",
        }
        try:
            yield DocsRun(project_dir=project_dir, env=env)
        finally:
            job_ids, execution_ids = flush_app_tables()
            remove_job_containers(client, job_ids, execution_ids)
            remove_networks(client, networks)
            reset_plugin_manager()
            client.close()
