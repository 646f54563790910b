"""Per-attempt history of a job and its logs as followed while it ran (imported by ``models``).

Read API (what the admin, a live tail or a terminal command uses):

- ``job.attempts.all()``: every run of a job in a container, oldest first (``JobAttempt``): host,
  container id, the engine's start and finish times, exit code, termination reason, peak memory,
  CPU %, usage samples, bytes printed and dropped per stream.
- ``latest_attempt(job)``: the current (or last) run, None before the first launch.
- ``attempt.log_since(stream, offset)``: what was stored of a stream from byte ``offset`` on, as a
  :class:`LogSlice` (text and the offset to ask for next). Poll it while the job runs: the head
  appears as it is printed, then the freshest tail. A cut in the middle is marked, never hidden.
- ``attempt.log_text(stream)``: the whole stored stream (head, a notice of the cut, tail), for download.

Each stream of an attempt is stored as ``LogChunk`` rows: the head (the first half of the log cap)
as soon as it is printed, so the engine's own log rotation cannot lose it, and a rolling tail
trimmed to the other half; once the output ended, the tail is exactly its last bytes, and the
dropped count exactly what the job printed minus what is kept. Offsets and counts are bytes of the
job's own output: the engine's timestamps and framing are never stored or counted.

Chunk bytes live in the database, or with ``CONTAINER_MANAGER["LOG_STORAGE"]`` set to a key of
Django's ``STORAGES``, in that storage (object storage, say), one file per chunk.
``LOG_RETENTION_DAYS`` bounds how long they are kept (``purge_job_logs``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from container_manager.conf import app_settings
from container_manager.states import TerminationReason
from container_manager_core.logstream import CapturedChunk, LogPart, LogStream
from container_manager_core.logtext import decode_parts, storable_text, truncation_notice

if TYPE_CHECKING:
    from container_manager.models import ContainerJob

# Most bytes one log_since call returns: a live tail asks again for the rest.
LOG_SLICE_BYTES = 256 * 1024
# Usage samples kept per attempt (a sample every 30 s at most: over an hour of run).
MAX_USAGE_SAMPLES = 150


class LogSlice(NamedTuple):
    """Stored output from an offset: ``text``, and ``next_offset`` to pass to the next call.

    ``dropped``: bytes between the asked offset and ``text`` that are not kept (the cap's cut);
    ``text`` then starts with the cut's notice.
    """

    text: str
    next_offset: int
    dropped: int


class JobAttempt(models.Model):
    """One run of a job in a container: where, when (by the engine's clock), how it ended, its logs.

    Created when the container is launched (or adopted), finished when its exit is recorded, so a
    retried job keeps every earlier attempt with its exit code, reason, usage and logs.
    ``duration`` is the container's own run time (the engine's StartedAt to FinishedAt);
    ``harvest_seconds`` is the worker's time to collect the results after the exit, apart.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(
        "container_manager.ContainerJob", on_delete=models.CASCADE, related_name="attempts"
    )
    number = models.PositiveIntegerField(
        help_text=_("1 for the first run of the job, 2 for its first retry...")
    )
    claim = models.PositiveIntegerField(
        help_text=_("The job's claim counter (attempt) when it was launched.")
    )
    worker_id = models.CharField(max_length=100, blank=True)
    host = models.ForeignKey(
        "container_manager.ExecutorHost", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    host_name = models.CharField(max_length=100, blank=True)
    execution_id = models.CharField(max_length=200, blank=True)
    launched_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True, help_text=_("The engine's StartedAt."))
    finished_at = models.DateTimeField(null=True, blank=True, help_text=_("The engine's FinishedAt."))
    harvested_at = models.DateTimeField(null=True, blank=True)
    harvest_seconds = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    termination_reason = models.CharField(max_length=30, choices=TerminationReason.choices, blank=True)
    error = models.TextField(blank=True)
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_percent = models.FloatField(null=True, blank=True)
    usage_samples = models.JSONField(
        default=list,
        blank=True,
        help_text=_("[seconds since launch, peak memory bytes, CPU %] while it ran."),
    )
    stdout_bytes = models.BigIntegerField(default=0, help_text=_("Bytes the job printed on stdout."))
    stderr_bytes = models.BigIntegerField(default=0)
    stdout_dropped_bytes = models.BigIntegerField(default=0, help_text=_("Bytes of stdout not kept."))
    stderr_dropped_bytes = models.BigIntegerField(default=0)
    logs_complete = models.BooleanField(
        default=False, help_text=_("The output was followed to its end (else it was read at the exit).")
    )

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="cm_attempt_number_uniq")]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.number}"

    @property
    def duration(self) -> timedelta | None:
        """Return the container's own run time, by the engine's clock; None until it is known."""
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.harvested_at is not None

    def printed_bytes(self, stream: LogStream | str) -> int:
        return int(getattr(self, f"{LogStream(stream)}_bytes"))

    def log_since(
        self, stream: LogStream | str, offset: int = 0, *, limit: int = LOG_SLICE_BYTES
    ) -> LogSlice:
        """Return what is stored of ``stream`` from byte ``offset`` on (at most ``limit`` bytes).

        Text is storable (NUL and invalid UTF-8 replaced); a character is never split between two
        calls: ``next_offset`` stops before an unfinished one. Bytes the cap dropped in between
        are skipped, and ``text`` starts with the notice saying how many.
        """
        if offset < 0:
            raise ValueError(f"A log offset is zero or more bytes, got {offset!r}.")
        stream = LogStream(stream)
        position = offset
        while True:
            start, data, gap_follows = self._contiguous_from(stream, position, limit)
            if start is None:
                return LogSlice("", offset, 0)
            if start > position:  # a cut: a character it split is dropped whole, as in log_text
                skip = _leading_continuations(data)
                data, start = data[skip:], start + skip
            complete = len(data) - _unfinished_tail(data)
            if complete or not gap_follows or len(data) >= limit:
                break
            position = start + len(data)  # only a character the cut split: it goes with the cut
        text, _replaced = storable_text(data[:complete])
        dropped = start - offset
        if dropped:
            text = truncation_notice(dropped).lstrip("\n") + text
        return LogSlice(text, start + complete, dropped)

    def _contiguous_from(self, stream: LogStream, offset: int, limit: int) -> tuple[int | None, bytes, bool]:
        """Return where the stored bytes from ``offset`` on begin, up to ``limit`` of them in a row,
        and whether a cut follows them."""
        rows = self.log_chunks.filter(stream=stream, end__gt=offset).order_by("offset")
        data, start = bytearray(), None
        for chunk_offset, blob, path in rows.values_list("offset", "data", "path"):
            if start is None:
                start = max(offset, chunk_offset)
            elif chunk_offset != start + len(data):
                return start, bytes(data[:limit]), len(data) <= limit
            data += _read_chunk(blob, path)[max(0, start + len(data) - chunk_offset) :]
            if len(data) >= limit:
                break
        return start, bytes(data[:limit]), False

    def stored_end(self, stream: LogStream | str) -> int:
        """Return the offset just past the last byte stored of ``stream`` (0: nothing yet)."""
        end = self.log_chunks.filter(stream=LogStream(stream)).aggregate(end=models.Max("end"))["end"]
        return int(end or 0)

    def log_text(self, stream: LogStream | str) -> str:
        """Return the whole stored stream: head, then the notice of a cut, then the tail."""
        stream = LogStream(stream)
        head, tail = bytearray(), bytearray()
        for part, blob, path in (
            self.log_chunks.filter(stream=stream).order_by("offset").values_list("part", "data", "path")
        ):
            (head if part == LogPart.HEAD else tail).extend(_read_chunk(blob, path))
        dropped = self.printed_bytes(stream) - len(head) - len(tail)
        return decode_parts(bytes(head), bytes(tail), max(0, dropped)).text

    def add_usage_sample(self, seconds: float, memory: int | None, cpu: float | None) -> None:
        """Append one usage sample (kept to the last MAX_USAGE_SAMPLES) and save it alone."""
        samples = [*(self.usage_samples or []), [round(seconds, 1), memory, cpu]][-MAX_USAGE_SAMPLES:]
        self.usage_samples = samples
        type(self).objects.filter(pk=self.pk).update(usage_samples=samples)


class LogChunk(models.Model):
    """Bytes of one stream of an attempt, from byte ``offset`` to ``end`` of what the job printed."""

    attempt = models.ForeignKey(JobAttempt, on_delete=models.CASCADE, related_name="log_chunks")
    stream = models.CharField(max_length=6, choices=[(s.value, s.value) for s in LogStream])
    part = models.CharField(max_length=4, choices=[(p.value, p.value) for p in LogPart])
    offset = models.BigIntegerField()
    end = models.BigIntegerField()
    data = models.BinaryField(blank=True, help_text=_("The bytes, unless they are in LOG_STORAGE."))
    path = models.CharField(max_length=300, blank=True, help_text=_("Their file in LOG_STORAGE."))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["attempt", "stream", "offset"], name="cm_logchunk_read_idx")]

    def __str__(self) -> str:
        return f"{self.stream} {self.part} {self.offset}-{self.end}"


def latest_attempt(job: ContainerJob) -> JobAttempt | None:
    """Return the job's current or last attempt, None before its first launch."""
    return job.attempts.order_by("-number").first()


def log_storage() -> Storage | None:
    """Return the storage chunk bytes go to, None for the database."""
    alias = app_settings().LOG_STORAGE
    return None if alias is None else storages[alias]


def _read_chunk(blob: Any, path: str) -> bytes:
    if path:
        storage = log_storage()
        if storage is None:
            return b""  # written to a storage since unset: the bytes are out of reach
        with storage.open(path, "rb") as handle:
            return bytes(handle.read())
    return bytes(blob or b"")


def _leading_continuations(data: bytes) -> int:
    """Return how many of the first three bytes of ``data`` are UTF-8 continuation bytes in a row."""
    count = 0
    while count < min(3, len(data)) and 0x80 <= data[count] <= 0xBF:
        count += 1
    return count


def _unfinished_tail(data: bytes) -> int:
    """Return how many bytes at the end of ``data`` start a UTF-8 character not yet complete."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if back < needed else 0
    return 0


def store_chunks(attempt_pk: Any, chunks: Iterable[CapturedChunk]) -> None:
    """Save captured chunks of an attempt; tail chunks older than the tail's budget are deleted."""
    storage = log_storage()
    rows = []
    for chunk in chunks:
        if not chunk.data:
            continue
        row = LogChunk(
            attempt_id=attempt_pk,
            stream=chunk.stream,
            part=chunk.part,
            offset=chunk.offset,
            end=chunk.offset + len(chunk.data),
        )
        if storage is None:
            row.data = chunk.data
        else:
            name = f"container_manager/logs/{attempt_pk}/{chunk.stream}-{chunk.part}-{chunk.offset:016d}"
            row.path = storage.save(name, ContentFile(chunk.data))
        rows.append(row)
    if rows:
        LogChunk.objects.bulk_create(rows)


def trim_tail(attempt_pk: Any, stream: LogStream, keep_from: int) -> None:
    """Delete the stored tail chunks of ``stream`` that end at or before byte ``keep_from``."""
    _delete_chunks(
        LogChunk.objects.filter(attempt_id=attempt_pk, stream=stream, part=LogPart.TAIL, end__lte=keep_from)
    )


def replace_tails(attempt_pk: Any, tails: Iterable[CapturedChunk], *, stored: bool = True) -> None:
    """Replace the stored tail chunks of the attempt (if ``stored``: there are some) by the exact final tails."""
    if stored:
        _delete_chunks(LogChunk.objects.filter(attempt_id=attempt_pk, part=LogPart.TAIL))
    store_chunks(attempt_pk, tails)


def _delete_chunks(chunks: models.QuerySet[LogChunk]) -> None:
    storage = log_storage()
    if storage is not None:
        for path in chunks.exclude(path="").values_list("path", flat=True):
            storage.delete(path)
    chunks.delete()


@receiver(pre_delete, sender=JobAttempt)
def _delete_chunk_files(sender: type[JobAttempt], instance: JobAttempt, **_kwargs: Any) -> None:
    # Rows go with the attempt (CASCADE); files in a storage would stay behind.
    if log_storage() is not None:
        _delete_chunks(instance.log_chunks.all())


def purge_logs(older_than: datetime) -> int:
    """Delete the stored logs of attempts harvested before ``older_than``; return how many chunks went.

    The attempts themselves stay (exit code, reason, usage, counts): only their output goes.
    """
    chunks = LogChunk.objects.filter(attempt__harvested_at__lt=older_than)
    count = chunks.count()
    _delete_chunks(chunks)
    return count
