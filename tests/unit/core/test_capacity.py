"""Reading a host's size from a health status's details: any value in, a usable size or None out."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from container_manager_core.capacity import (
    CPUS,
    MEMORY_TOTAL_BYTES,
    MIB,
    EngineCapacity,
    capacity_details,
    read_capacity,
)

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
)


def test_an_engines_report_reads_back_in_mb_and_cpus() -> None:
    assert read_capacity(capacity_details(8 * 1024 * MIB + 12345, 4)) == EngineCapacity(8192, 4.0)
    assert read_capacity({}) == EngineCapacity(None, None)  # Cloud Run: unbounded.


def test_less_than_a_mib_and_non_positive_figures_say_nothing() -> None:
    assert read_capacity(capacity_details(MIB - 1, 0)) == EngineCapacity(None, None)
    assert read_capacity(capacity_details(-MIB, -2.0)) == EngineCapacity(None, None)
    assert read_capacity(capacity_details(True, True)) == EngineCapacity(None, None)


@given(memory=ANYTHING, cpus=ANYTHING, extra=st.dictionaries(st.text(max_size=5), ANYTHING, max_size=3))
def test_any_details_give_a_positive_finite_size_or_none(
    memory: Any, cpus: Any, extra: dict[str, Any]
) -> None:
    capacity = read_capacity({**extra, MEMORY_TOTAL_BYTES: memory, CPUS: cpus})
    if capacity.memory_mb is not None:
        assert isinstance(capacity.memory_mb, int) and capacity.memory_mb >= 1
        assert capacity.memory_mb * MIB <= memory  # Rounded down: never more than the engine has.
    if capacity.cpus is not None:
        assert math.isfinite(capacity.cpus) and capacity.cpus > 0
        assert capacity.cpus == float(cpus)
    usable = isinstance(cpus, int | float) and not isinstance(cpus, bool) and math.isfinite(cpus) and cpus > 0
    assert (capacity.cpus is not None) == usable
