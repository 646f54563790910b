"""The Django app of container-manager: jobs, hosts, the worker, admin."""

from __future__ import annotations
