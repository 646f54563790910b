"""The result channel's frame and its reading: any JSON value survives any output around it."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from container_manager.tasks import channel

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
NONCE = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
# What a task may print: any text, frames of other nonces and broken frames included.
PRINTS = st.lists(
    st.text()
    | NONCE.map(lambda n: channel.frame(n, channel.Outcome(channel.SUCCESSFUL, value="other")).decode())
    | st.just('{"container_manager_task_result": {"nonce": '),
    max_size=5,
).map("".join)


@given(value=JSON, nonce=NONCE, before=PRINTS)
def test_a_value_framed_after_any_output_is_read_back(value: object, nonce: str, before: str) -> None:
    output = before + channel.frame(nonce, channel.Outcome(channel.SUCCESSFUL, value=value)).decode()
    found = channel.find_outcome(output, nonce)
    assert found is not None and found.successful
    assert found.value == json.loads(json.dumps(value))


@given(nonce=NONCE, before=PRINTS, message=st.text(), trace=st.text())
def test_a_failure_keeps_its_class_message_and_traceback(
    nonce: str, before: str, message: str, trace: str
) -> None:
    failure = channel.Outcome(channel.FAILED, exception_class="pkg.Error", message=message, traceback=trace)
    found = channel.find_outcome(before + channel.frame(nonce, failure).decode(), nonce)
    assert found == failure


@given(nonce=NONCE, other=NONCE, before=PRINTS, value=JSON)
def test_only_the_jobs_own_nonce_is_believed(nonce: str, other: str, before: str, value: object) -> None:
    output = before + channel.frame(other, channel.Outcome(channel.SUCCESSFUL, value=value)).decode()
    if other != nonce and nonce not in before:
        assert channel.find_outcome(output, nonce) is None
    assert channel.find_outcome(output, "") is None


def test_a_value_that_is_not_json_cannot_be_framed() -> None:
    for value in (float("nan"), object(), {1j: 2}):
        try:
            channel.frame("n", channel.Outcome(channel.SUCCESSFUL, value=value))
        except (TypeError, ValueError):
            continue
        raise AssertionError(f"{value!r} was framed")
