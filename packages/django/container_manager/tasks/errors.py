"""Why a task's container ended without the task's own answer; the class paths of its TaskError.

``TaskError.exception_class`` imports its path, so each reason is a real exception class.
"""

from __future__ import annotations


class TaskContainerError(Exception):
    """The container ended without reporting the task's result."""


class TaskOutOfMemory(TaskContainerError):
    """The container was killed for using more memory than its queue's limit."""


class TaskTimedOut(TaskContainerError):
    """The container ran past its queue's timeout and was stopped."""


class TaskCancelled(TaskContainerError):
    """The job was cancelled, before or while it ran."""


class TaskLaunchFailed(TaskContainerError):
    """The container could not be started (a refused spec, a missing image, a lost host)."""


class TaskNoResult(TaskContainerError):
    """The container exited without the runner's result line (a crash, ``os._exit``, a lost log)."""
