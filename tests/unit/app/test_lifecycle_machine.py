"""A hypothesis state machine over one job's life, driven through the real event methods on the database.

Two workers and a person act on one job in any order, each through its own instance (so views go
stale as they do in production): claims, launches, exits of every kind (timeouts and cancels
among them), launch failures, releases, cancels, re-queues, lost leases and takeovers. After every
step the row is read back: a status change is one the TRANSITIONS table allows, made by the event
that was called, and its signals were sent exactly once; a refused event changed nothing and sent
nothing; a worker's write landed only while it held the job's claim.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from container_manager import signals
from container_manager.exceptions import InvalidStateTransition
from container_manager.models import ContainerJob, ExecutorHost, Owner
from container_manager.states import (
    ACTIVE_STATUSES,
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    TRANSITIONS,
    JobStatus,
    TerminationReason,
)
from tests.factories import make_host, make_job

# The signals are sent on commit: an autocommit test sees them as the worker does.
pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = ("w1", "w2")
EXITS = (
    TerminationReason.COMPLETED,
    TerminationReason.NON_ZERO_EXIT,
    TerminationReason.OOM_KILLED,
    TerminationReason.TIMEOUT,
    TerminationReason.CANCELLED,
    TerminationReason.HOST_LOST,
)
LAUNCH_FAILURES = (
    TerminationReason.LAUNCH_FAILED,
    TerminationReason.IMAGE_PULL_FAILED,
    TerminationReason.INVALID_SPEC,
)


class JobLifecycle(RuleBasedStateMachine):
    host: ExecutorHost  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any, Any]] = []
        self.views: dict[str, ContainerJob] = {}  # each worker's own instance of the job
        self.owners: dict[str, Owner | None] = dict.fromkeys(WORKERS)
        self.transitions = 0

    # Setup and the check after every event ----------------------------------------------------------

    @initialize(max_retries=st.integers(0, 2))
    def queue(self, max_retries: int) -> None:
        self.job = make_job(host=self.host, max_retries=max_retries)
        self.pk = self.job.pk
        for name, signal in (
            ("changed", signals.job_status_changed),
            ("started", signals.job_started),
            ("finished", signals.job_finished),
        ):
            signal.connect(self._recorder(name), weak=False, dispatch_uid=f"machine-{name}")

    def _recorder(self, name: str) -> Callable[..., None]:
        def receive(sender: object, **kwargs: Any) -> None:
            if kwargs["job"].pk == self.pk:
                self.sent.append((name, kwargs.get("old_status"), kwargs.get("new_status")))

        return receive

    def teardown(self) -> None:
        for name, signal in (
            ("changed", signals.job_status_changed),
            ("started", signals.job_started),
            ("finished", signals.job_finished),
        ):
            signal.disconnect(dispatch_uid=f"machine-{name}")

    def row(self) -> ContainerJob:
        return ContainerJob.objects.get(pk=self.pk)

    def event(self, call: Callable[[], object], *, by: str | None = None) -> bool:
        """Run one event method; check what it wrote and sent; return whether it was accepted."""
        before = self.row()
        self.sent.clear()
        try:
            call()
            accepted = True
        except InvalidStateTransition:
            accepted = False
        after = self.row()
        old, new = JobStatus(before.status), JobStatus(after.status)
        if not accepted:
            assert (old, after.worker_id, after.attempt) == (new, before.worker_id, before.attempt)
        if old == new:
            assert self.sent == [], self.sent
            return accepted
        assert accepted, f"a refused event moved the job {old} -> {new}"
        assert new in TRANSITIONS[old], f"illegal transition {old} -> {new} written"
        expected = [("changed", old, new)]
        if new == JobStatus.RUNNING:
            expected.append(("started", None, None))
        elif new in FINISHED_STATUSES:
            expected.append(("finished", None, None))
        assert self.sent == expected, (self.sent, expected)
        if by is not None:  # A worker's write lands only while it holds the claim.
            assert Owner(after.worker_id, after.attempt) == self.owners[by]
        self.transitions += 1
        return accepted

    def view(self, worker: str) -> ContainerJob:
        return self.views.setdefault(worker, self.row())

    def owner(self, worker: str) -> Owner:
        # A worker that never held the job writes with a claim that cannot match.
        return self.owners[worker] or Owner(worker, -1)

    # A worker's events --------------------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), fresh=st.booleans())
    def claim(self, worker: str, fresh: bool) -> None:
        candidate = self.row() if fresh else self.view(worker)
        seen, status = candidate.status, self.row().status
        now = timezone.now()
        won: list[ContainerJob] = []

        def mark() -> None:
            won.extend(
                ContainerJob.mark_launching(
                    [candidate],
                    host=self.host,
                    worker_id=worker,
                    lease_expires_at=now + timedelta(seconds=30),
                    now=now,
                )
            )

        # The claim answers with the jobs won rather than raising: the claim's own check is this.
        # Like every transition it moves a row only from the status it was read with.
        self.event(mark)
        assert bool(won) == (status in CLAIMABLE_STATUSES and seen == status)
        if won:
            self.views[worker] = won[0]
            self.owners[worker] = won[0].owner()

    @rule(worker=st.sampled_from(WORKERS))
    def launch(self, worker: str) -> None:
        job = self.view(worker)
        self.event(lambda: job.mark_running(self.owner(worker), execution_id=f"c-{worker}"), by=worker)

    @rule(
        worker=st.sampled_from(WORKERS),
        reason=st.sampled_from(EXITS),
        interrupted=st.booleans(),
        exit_code=st.integers(-1, 255),
    )
    def exit(self, worker: str, reason: TerminationReason, interrupted: bool, exit_code: int) -> None:
        job = self.view(worker)
        self.event(
            lambda: job.record_exit(
                self.owner(worker), reason, result={"exit_code": exit_code}, interrupted=interrupted
            ),
            by=worker,
        )

    @rule(worker=st.sampled_from(WORKERS), reason=st.sampled_from(LAUNCH_FAILURES))
    def fail_launch(self, worker: str, reason: TerminationReason) -> None:
        job = self.view(worker)
        self.event(lambda: job.fail_launch(self.owner(worker), reason, "refused"), by=worker)

    @rule(worker=st.sampled_from(WORKERS), unpin=st.booleans())
    def release(self, worker: str, unpin: bool) -> None:
        job = self.view(worker)
        self.event(lambda: job.release(self.owner(worker), "unreachable", unpin=unpin), by=worker)

    @rule(worker=st.sampled_from(WORKERS))
    def renew_lease(self, worker: str) -> None:
        before = self.row()
        lost = ContainerJob.renew_leases(worker, [str(self.pk)], 30)
        holds = before.worker_id == worker and before.status in ACTIVE_STATUSES
        assert lost == (set() if holds else {str(self.pk)})
        assert self.row().status == before.status  # a lease is never a status change
        if lost:
            self.owners[worker] = None  # The worker stops acting on the job.

    @rule(worker=st.sampled_from(WORKERS))
    def take_over(self, worker: str) -> None:
        # The lease ran out (the owner died or hung) and a worker's reconciliation finds the job.
        expired = timezone.now() - timedelta(seconds=1)
        ContainerJob.objects.filter(pk=self.pk, status__in=ACTIVE_STATUSES).update(lease_expires_at=expired)
        found = self.row()
        before = (found.status, found.attempt)
        self.sent.clear()
        took = found.take_over(worker_id=worker, lease_seconds=30)
        assert took == (found.status in ACTIVE_STATUSES)
        assert self.sent == []  # the claim moves, the status does not
        row = self.row()
        assert row.status == before[0]
        if took:
            assert (row.worker_id, row.attempt) == (worker, before[1] + 1)
            self.views[worker] = found
            self.owners[worker] = found.owner()

    # A person's events --------------------------------------------------------------------------------

    @rule(stale=st.booleans())
    def cancel(self, stale: bool) -> None:
        job = self.job if stale else self.row()
        self.event(job.request_cancel)

    @rule()
    def requeue(self) -> None:
        job = self.row()  # The admin's action loads the row it acts on.
        finished = job.status in FINISHED_STATUSES
        assert self.event(job.requeue) == finished

    @invariant()
    def only_active_jobs_are_held(self) -> None:
        if not hasattr(self, "pk"):
            return
        row = self.row()
        if row.status in ACTIVE_STATUSES:  # an active job is always held by a worker's claim
            assert row.worker_id in WORKERS and row.attempt >= 1
        else:  # and only an active one has a lease
            assert row.lease_expires_at is None, row.status


def test_the_job_lifecycle_never_writes_an_illegal_transition(db: None) -> None:
    JobLifecycle.host = make_host(name="machine-host", max_concurrent_jobs=100)
    run_state_machine_as_test(
        JobLifecycle,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
