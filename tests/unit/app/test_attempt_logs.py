"""A job's attempts serve their stored output: a live tail from an offset, the whole stream, any storage."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.utils import timezone

from container_manager.attempts import latest_attempt, store_chunks
from container_manager.conf import AppSettings
from container_manager.models import JobAttempt, LogChunk
from container_manager_core.logstream import CapturedChunk, LogCapture, LogPart, LogPiece, LogStream
from tests.factories import make_host, make_job

pytestmark = pytest.mark.django_db


def _attempt(printed: bytes, limit: int, take_every: int = 7) -> JobAttempt:
    job = make_job(host=make_host())
    attempt = JobAttempt.objects.create(job=job, number=1, claim=1, host_name="mock-1", execution_id="x")
    capture = LogCapture(limit)
    for start in range(0, len(printed), take_every):
        capture.feed(LogPiece("stdout", printed[start : start + take_every]))
        store_chunks(attempt.pk, [c for c in capture.take() if c.part is LogPart.HEAD])
    store_chunks(attempt.pk, capture.take() and [])
    store_chunks(attempt.pk, [c for c in capture.final_tails() if c.stream == LogStream.STDOUT])
    attempt.stdout_bytes = capture.total(LogStream.STDOUT)
    attempt.stdout_dropped_bytes = capture.dropped(LogStream.STDOUT)
    attempt.save()
    return attempt


def _tail_all(attempt: JobAttempt, limit: int) -> tuple[str, int]:
    text, offset, dropped = "", 0, 0
    while True:
        piece = attempt.log_since("stdout", offset, limit=limit)
        if piece.next_offset == offset and not piece.text:
            return text, dropped
        text, offset, dropped = text + piece.text, piece.next_offset, dropped + piece.dropped


def test_a_live_tail_reads_head_then_the_cut_then_the_tail_never_splitting_a_character() -> None:
    printed = ("é" * 30 + "\n").encode() * 4  # 244 bytes of two-byte characters
    attempt = _attempt(printed, limit=100)
    assert latest_attempt(attempt.job) == attempt
    text, dropped = _tail_all(attempt, limit=9)  # 9: every slice ends inside a character
    assert dropped == 145 and attempt.stdout_dropped_bytes == 144
    # The tail's first byte ends a character the cut split: it is dropped whole, and counted.
    head, tail = printed[:50].decode(), printed[-49:].decode()
    assert text == head + "[... 145 bytes dropped by the log cap ...]\n" + tail
    assert attempt.log_text("stdout") == head + "\n[... 145 bytes dropped by the log cap ...]\n" + tail


def test_nothing_stored_reads_as_nothing_and_a_negative_offset_is_refused() -> None:
    attempt = _attempt(b"", limit=10)
    assert attempt.log_since("stderr", 0) == ("", 0, 0)
    assert attempt.log_text("stderr") == ""
    with pytest.raises(ValueError, match="zero or more bytes"):
        attempt.log_since("stdout", -1)


def test_chunks_go_to_the_configured_storage_and_the_retention_purges_them(
    settings: Any, tmp_path: Path
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "job_logs": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    settings.CONTAINER_MANAGER = {**getattr(settings, "CONTAINER_MANAGER", {}), "LOG_STORAGE": "job_logs"}
    attempt = _attempt(b"line\n" * 3, limit=1000)
    chunks = list(LogChunk.objects.filter(attempt=attempt).order_by("offset"))
    assert all(chunk.path and bytes(chunk.data or b"") == b"" for chunk in chunks)
    assert b"".join((tmp_path / chunk.path).read_bytes() for chunk in chunks) == b"line\n" * 3
    assert attempt.log_text("stdout") == "line\n" * 3
    JobAttempt.objects.filter(pk=attempt.pk).update(harvested_at=timezone.now() - timedelta(days=3))
    call_command("purge_job_logs", days=2)
    assert not LogChunk.objects.filter(attempt=attempt).exists()
    assert not any((tmp_path / chunk.path).exists() for chunk in chunks)
    assert JobAttempt.objects.filter(pk=attempt.pk).exists()  # the attempt itself stays


@pytest.mark.parametrize(
    ("key", "value"),
    [("LOG_STORAGE", ""), ("LOG_STORAGE", 3), ("LOG_RETENTION_DAYS", 0), ("LOG_RETENTION_DAYS", True)],
)
def test_log_settings_refuse_what_they_cannot_use(key: str, value: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match=key):
        AppSettings(**{key: value})


def test_stored_chunks_are_the_bytes_at_their_offsets() -> None:
    attempt = _attempt(b"", limit=10)
    store_chunks(attempt.pk, [CapturedChunk(LogStream.STDERR, LogPart.HEAD, 0, b"abc")])
    assert attempt.log_since("stderr", 1).text == "bc"
