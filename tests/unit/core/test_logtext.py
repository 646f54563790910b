from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_manager_core.logtext import (
    HeadTailBuffer,
    cap_head_tail,
    head_budget,
    parse_json_output,
    render_capped,
    strip_timestamps,
    truncation_notice,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05.123456789Z hello\n", "hello\n"),
        ("2024-01-02T03:04:05Z a\n2024-01-02T03:04:06.5Z b\n", "a\nb\n"),
        ("2024-01-02T03:04:05.123+02:00 offset\n", "offset\n"),
        ("2024-01-02T03:04:05.000000000Z \n", "\n"),
        ("2024-01-02T03:04:05.000000000Z\n", "\n"),
        ("2024-01-02T03:04:05Z  two spaces kept\n", " two spaces kept\n"),
        ("no stamp here\n2024-01-02T03:04:05Z x", "no stamp here\nx"),
        ("mid line 2024-01-02T03:04:05Z stays\n", "mid line 2024-01-02T03:04:05Z stays\n"),
        ("2024-01-02 03:04:05 not rfc3339\n", "2024-01-02 03:04:05 not rfc3339\n"),
        ("2024-01-02T03:04:05Zglued\n", "2024-01-02T03:04:05Zglued\n"),
    ],
)
def test_strip_timestamps(text: str, expected: str) -> None:
    assert strip_timestamps(text) == expected


@settings(max_examples=100)
@given(st.lists(st.text(st.characters(blacklist_characters="\n\r"), max_size=20), max_size=5))
def test_strip_timestamps_undoes_docker_prefixes(lines: list[str]) -> None:
    stamped = "".join(f"2024-05-06T07:08:09.{i:09d}Z {line}\n" for i, line in enumerate(lines))
    assert strip_timestamps(stamped) == "".join(f"{line}\n" for line in lines)


def test_cap_keeps_head_and_tail_and_counts_the_rest() -> None:
    data = bytes(range(100))
    assert cap_head_tail(data, 100) == (data, 0)
    assert cap_head_tail(data, 10) == (data[:5] + data[95:], 90)
    assert cap_head_tail(data, 5) == (data[:3] + data[98:], 95)
    assert cap_head_tail(data, 1) == (data[:1], 99)
    assert cap_head_tail(data, 0) == (b"", 100)
    with pytest.raises(ValueError, match=r"^The log cap must be zero or more bytes, got -1\.$"):
        cap_head_tail(data, -1)


def test_render_capped_splices_the_notice_between_head_and_tail() -> None:
    assert truncation_notice(123456) == "\n[... 123456 bytes dropped by the log cap ...]\n"
    kept, dropped = cap_head_tail(b"head-" + b"x" * 1000 + b"-tail", 10)
    assert render_capped(kept, dropped, 10) == "head-" + truncation_notice(1000) + "-tail"
    assert render_capped(b"short", 0, 10) == "short"


def test_render_capped_decodes_halves_apart() -> None:
    # "é" is two bytes; the cap cuts the first one off the tail, which must not swallow the notice.
    data = "aé".encode() + b"z" * 50 + "éb".encode()
    kept, dropped = cap_head_tail(data, 4)
    assert render_capped(kept, dropped, 4) == "a\ufffd" + truncation_notice(dropped) + "\ufffdb"


@settings(max_examples=200)
@given(
    st.binary(max_size=300),
    st.integers(0, 120),
    st.lists(st.integers(0, 80), max_size=20),
)
def test_head_tail_buffer_equals_cap_head_tail_for_any_chunking(
    data: bytes, limit: int, cuts: list[int]
) -> None:
    buffer = HeadTailBuffer(limit)
    position = 0
    for size in cuts:
        buffer.feed(data[position : position + size])
        position += size
    buffer.feed(data[position:])
    assert buffer.result() == cap_head_tail(data, limit)
    assert buffer.total == len(data)
    assert head_budget(limit) + limit // 2 == limit


@pytest.mark.parametrize("chunk_size", [4 * 1024, 1024 * 1024])
def test_head_tail_buffer_memory_stays_bounded_under_a_flood(chunk_size: int) -> None:
    limit = 64 * 1024
    buffer = HeadTailBuffer(limit)
    chunk = b"y" * chunk_size
    count = 50 * 1024 * 1024 // chunk_size
    tracemalloc.start()
    try:
        for _ in range(count):
            buffer.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept, dropped = buffer.result()
    assert len(kept) == limit
    assert dropped == count * chunk_size - limit
    # Far below the 50 MB that went through: the buffer holds about one cap's worth at a time.
    assert peak < 4 * limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"ok": true}', {"ok": True}),
        ("  \n[1, 2]\n\n", [1, 2]),
        ("42", 42),
        ('"just a string"', "just a string"),
        ('{\n  "pretty": [1,\n 2]\n}\n', {"pretty": [1, 2]}),
        ('starting...\nprogress 50%\n{"result": "done"}\n', {"result": "done"}),
        ("log line\n[3, 4]", [3, 4]),
        ("log line\n42", None),
        ('log line\n"text"', None),
        ("log line\n{not json}", None),
        ('{"result": 1}\ntrailing log line', None),
        ("", None),
        ("   \n", None),
        ("[" * 100_000, None),
    ],
)
def test_parse_json_output(text: str, expected: object) -> None:
    assert parse_json_output(text) == expected
