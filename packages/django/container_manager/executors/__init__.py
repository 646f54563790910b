"""The app's side of executors: the cached plugin manager and the documented ExecutorFactory facade."""

from __future__ import annotations
