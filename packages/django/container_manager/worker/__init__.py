"""The worker: claim jobs, launch them on a host, notice exits, harvest results, recover from crashes."""

from __future__ import annotations
