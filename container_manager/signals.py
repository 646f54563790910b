"""Signals sent after a job's status changes (after the transaction commits)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with job=<ContainerJob>, old_status=<JobStatus>, new_status=<JobStatus> on every transition.
job_status_changed = Signal()
