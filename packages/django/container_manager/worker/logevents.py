"""Structured, key=value log lines for every job event, on the ``container_manager.worker`` logger."""

from __future__ import annotations

import logging
from typing import Any

from container_manager_core.secrets import scrub

logger = logging.getLogger("container_manager.worker")


def _quote(value: object) -> str:
    text = scrub(str(value))  # Fields may quote an engine's or a plugin's words, and those a credential.
    # Quote values with spaces or quotes so a line still splits cleanly into key=value pairs.
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def log_event(
    event: str,
    *,
    job: object = "-",
    execution: str = "",
    host: str = "",
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one job event as ``event=... job=... execution=... host=...`` plus any extra fields."""
    if not logger.isEnabledFor(level):
        return
    extra = "".join(f" {key}={_quote(value)}" for key, value in fields.items())
    logger.log(
        level, "event=%s job=%s execution=%s host=%s%s", event, job, execution or "-", host or "-", extra
    )
