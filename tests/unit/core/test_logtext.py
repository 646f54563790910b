from __future__ import annotations

import json
import math
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_manager_core.logtext import (
    INVALID_REPLACEMENT,
    NUL_REPLACEMENT,
    DecodedStream,
    HeadTailBuffer,
    buffered_logs,
    cap_head_tail,
    decode_stream,
    head_budget,
    parse_json_output,
    storable_json,
    storable_text,
    strip_timestamps,
    truncation_notice,
)
from container_manager_core.types import ExecutionLogs

_REPLACEMENTS = (NUL_REPLACEMENT, INVALID_REPLACEMENT)


def _is_storable(text: str) -> bool:
    """PostgreSQL's rule: no NUL, and the text has a UTF-8 encoding (no surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _reference(data: bytes) -> tuple[str, int]:
    """Byte by byte, the slow way: a valid UTF-8 sequence is kept, any other byte replaced."""
    out, replaced, i = [], 0, 0
    while i < len(data):
        for size in (1, 2, 3, 4):
            try:
                char = data[i : i + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        else:
            out.append(INVALID_REPLACEMENT)
            replaced += 1
            i += 1
            continue
        if char == "\x00":
            out.append(NUL_REPLACEMENT)
            replaced += 1
        else:
            out.append(char)
        i += size
    return "".join(out), replaced


# Bytes with the troublemakers well represented: NUL, lone continuation and lead bytes, never-valid
# bytes, encoded surrogates, overlong forms, characters cut short, and good multibyte characters.
_PIECES = st.sampled_from(
    [
        b"\x00",
        b"\x80",
        b"\xbf",
        b"\xc0",
        b"\xc3",
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98",
        b"\xf5",
        b"\xff",
        b"\xc0\xaf",
        "é".encode(),
        "€".encode(),
        "😀".encode(),
        b"a",
        b"\n",
        NUL_REPLACEMENT.encode(),
        INVALID_REPLACEMENT.encode(),
    ]
)
ANY_BYTES = st.one_of(st.binary(max_size=200), st.lists(_PIECES, max_size=40).map(b"".join))


@settings(max_examples=500)
@given(ANY_BYTES)
def test_any_bytes_become_storable_text_with_each_replaced_byte_counted(data: bytes) -> None:
    text, replaced = storable_text(data)
    assert _is_storable(text)
    assert (text, replaced) == _reference(data)
    # One replacement character per replaced byte, and every other character is the job's own.
    added = sum(text.count(r) for r in _REPLACEMENTS) - sum(data.count(r.encode()) for r in _REPLACEMENTS)
    assert added == replaced
    assert storable_text(text) == (text, 0)  # storable text is a fixed point


@settings(max_examples=300)
@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])))
def test_valid_utf8_without_nul_comes_back_unchanged(text: str) -> None:
    assert storable_text(text.encode()) == (text, 0)
    assert storable_text(text) == (text, 0)


@settings(max_examples=300)
@given(st.text(st.characters(codec=None)))  # any code point, NUL and lone surrogates included
def test_any_str_is_its_bytes_made_storable(text: str) -> None:
    made, replaced = storable_text(text)
    assert _is_storable(made)
    assert (made, replaced) == storable_text(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\x00b\xffc", ("a\u2400b\ufffdc", 2)),
        (b"\xe2\x82", ("\ufffd\ufffd", 2)),  # a cut character: one mark per byte, not per sequence
        (b"\xed\xa0\x80", ("\ufffd" * 3, 3)),  # an encoded surrogate is not UTF-8
        (b"\xc0\xaf", ("\ufffd" * 2, 2)),  # nor an overlong form
        ("é€😀".encode(), ("é€😀", 0)),
        ("a\x00\udcff\ud800", ("a\u2400" + "\ufffd" * 6, 7)),  # str: surrogates as their 3 bytes
        (b"", ("", 0)),
    ],
)
def test_storable_text_examples(data: bytes | str, expected: tuple[str, int]) -> None:
    assert storable_text(data) == expected
    assert NUL_REPLACEMENT == "\N{SYMBOL FOR NULL}"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec=None)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec=None), max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(_JSON)
def test_storable_json_leaves_nothing_jsonb_refuses(value: object) -> None:
    made = storable_json(value)
    dumped = json.dumps(made, ensure_ascii=False, allow_nan=False)  # NaN and infinities are gone
    assert _is_storable(dumped)
    assert "\\u0000" not in dumped  # jsonb refuses the escape as well as the byte
    assert json.loads(dumped) == made


def test_storable_json_replaces_strings_keys_and_non_finite_numbers() -> None:
    value = {"a\x00": ["\ud800", {"k": "\x00"}, 1.5, math.inf, 3, True, None], "b": math.nan}
    assert storable_json(value) == {
        "a\u2400": ["\ufffd" * 3, {"k": "\u2400"}, 1.5, None, 3, True, None],
        "b": None,
    }
    assert storable_json("\x00") == "\u2400"
    deep: list[object] = []
    for _ in range(100_000):  # far deeper than Python's recursion limit
        deep = [deep]
    storable_json(deep)


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


def test_decode_stream_splices_the_notice_between_head_and_tail() -> None:
    assert truncation_notice(123456) == "\n[... 123456 bytes dropped by the log cap ...]\n"
    kept, dropped = cap_head_tail(b"head-" + b"x" * 1000 + b"-tail", 10)
    assert decode_stream(kept, dropped, 10) == ("head-" + truncation_notice(1000) + "-tail", 1000, 0)
    assert decode_stream(b"short", 0, 10) == ("short", 0, 0)
    assert decode_stream(b"a\x00\xff", 0, 10) == ("a\u2400\ufffd", 0, 2)


def test_decode_stream_drops_a_character_the_cut_splits_whole() -> None:
    # "é" is two bytes; the cap splits one at each side of the cut: the halves are the cap's, not the job's.
    data = "aé".encode() + b"z" * 50 + "éb".encode()
    kept, dropped = cap_head_tail(data, 4)
    assert decode_stream(kept, dropped, 4) == ("a" + truncation_notice(dropped + 2) + "b", dropped + 2, 0)
    # "€" (three bytes) cut after two in the head; the tail opens on whole characters.
    kept, dropped = cap_head_tail("ab€".encode() + b"z" * 50 + "é".encode(), 8)
    assert decode_stream(kept, dropped, 8) == ("ab" + truncation_notice(dropped + 2) + "zzé", dropped + 2, 0)
    # The job's own garbage at the seam is replaced and counted, not taken for a cut character.
    kept, dropped = cap_head_tail(b"ab\xff" + b"z" * 50 + b"\xfeyz", 6)
    assert decode_stream(kept, dropped, 6) == (
        "ab\ufffd" + truncation_notice(dropped) + "\ufffdyz",
        dropped,
        2,
    )


@settings(max_examples=300)
@given(ANY_BYTES, st.integers(0, 60))
def test_decode_stream_accounts_for_every_byte(data: bytes, limit: int) -> None:
    kept, dropped = cap_head_tail(data, limit)
    decoded = decode_stream(kept, dropped, limit)
    assert isinstance(decoded, DecodedStream)
    assert _is_storable(decoded.text)
    if not dropped:
        text, replaced = _reference(data)
        assert decoded == (text, 0, replaced)
        return
    head, notice, tail = decoded.text.partition(truncation_notice(decoded.dropped_bytes))
    assert notice
    # What is kept, re-encoded (each replaced byte became a three-byte mark), is all that was not dropped.
    kept_bytes = len(head.encode()) + len(tail.encode()) - 2 * decoded.replaced_bytes
    assert kept_bytes + decoded.dropped_bytes == len(data)
    assert decoded.dropped_bytes - dropped <= 6  # at most one character cut at each side
    # Replacements are counted in what is kept, one per mark added to the job's own text.
    halves = (data[: head_budget(limit)], data[len(data) - limit // 2 :])
    literal = sum(half.count(r.encode()) for half in halves for r in _REPLACEMENTS)
    marks = sum(part.count(r) for part in (head, tail) for r in _REPLACEMENTS)
    assert decoded.replaced_bytes == marks - literal


def test_buffered_logs_decode_both_streams_alike() -> None:
    out, err = HeadTailBuffer(100), HeadTailBuffer(4)
    out.feed(b"a\x00b\xffc")
    err.feed("xé".encode() + b"y" * 10 + "éz".encode())
    assert buffered_logs(out, err, timestamps=True) == ExecutionLogs(
        stdout="a\u2400b\ufffdc",
        stderr="x" + truncation_notice(14) + "z",
        timestamps=True,
        stdout_dropped_bytes=0,
        stderr_dropped_bytes=14,  # 12 past the cap, and the two halves of the é it split
        stdout_replaced_bytes=2,
        stderr_replaced_bytes=0,
    )


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
        # Strict JSON: what Python's json module reads beyond it, jsonb refuses.
        ("NaN", None),
        ("[1, Infinity]", None),
        ('log line\n{"x": -Infinity}', None),
        ("1e999", None),
        ('{"big": 1e308, "small": 1e-400}', {"big": 1e308, "small": 0.0}),
    ],
)
def test_parse_json_output(text: str, expected: object) -> None:
    assert parse_json_output(text) == expected
