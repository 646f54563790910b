"""Print the app's log records on stderr while a command runs, unless the project's LOGGING handles them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

APP_LOGGER = "container_manager"
# Time, level, message: the worker's events are already key=value lines, the logger name adds nothing.
FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def level_for(verbosity: int) -> int:
    """Map Django's ``-v`` to a level: 0 warnings and errors, 1 INFO (the default), 2 and 3 DEBUG."""
    if verbosity <= 0:
        return logging.WARNING
    return logging.INFO if verbosity == 1 else logging.DEBUG


def handled_by_the_project(name: str = APP_LOGGER) -> bool:
    """Say whether configured logging already handles records of ``name`` or of a logger below it.

    Django's default LOGGING configures only the ``django`` loggers; a project that configured
    ``container_manager``, one of its children or the root logger gets what it asked for, once.
    """
    if logging.getLogger(name).hasHandlers():
        return True
    below = (
        logger
        for key, logger in logging.Logger.manager.loggerDict.items()
        if key.startswith(f"{name}.") and isinstance(logger, logging.Logger)
    )
    return any(logger.handlers for logger in below)


@contextmanager
def console_logging(verbosity: int, name: str = APP_LOGGER) -> Iterator[None]:
    """Within the block, print ``name``'s records at ``verbosity`` on stderr if nothing else would.

    The handler and level are undone on exit, so a command called many times in one process
    (tests, ``call_command``) prints each line once and leaves the logger as it found it.
    """
    if handled_by_the_project(name):
        yield
        return
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level_for(verbosity))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
