"""Benchmarks: run by hand (python -m bench.throughput), never by the test suite."""

from __future__ import annotations
