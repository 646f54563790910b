"""The job admin's console: the job page's status, usage, attempts, live tail and buttons, and the workers page.

``JobConsole`` is the base of the job admin. Its views read through ``console.reading`` and act
through ``jobactions``, the same calls as the list actions and the terminal commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from container_manager import jobactions
from container_manager.console import reading
from container_manager.console.chart import usage_chart
from container_manager.console.timing import elapsed, exact, format_bytes, format_duration
from container_manager.console.workers import worker_rows
from container_manager.jobactions import Report
from container_manager.models import ContainerJob

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    _Base = admin.ModelAdmin[ContainerJob]
else:  # ModelAdmin is generic only in the type stubs.
    _Base = admin.ModelAdmin

# How often the page asks for new output while the job runs.
POLL_MILLISECONDS = 1000


def _exact(field: str, label: StrOrPromise) -> Callable[[Any, ContainerJob], str]:
    """Return an admin column showing a timestamp field to the second, with the time zone."""

    @admin.display(description=label, ordering=field)
    def show(_admin: Any, job: ContainerJob) -> str:
        return exact(getattr(job, field))

    return show


class JobConsole(_Base):
    """Views and columns of the operator's console; the job admin adds its fields and list."""

    created_exact = _exact("created_at", _("Created"))
    launched_exact = _exact("launched_at", _("Launched"))
    started_exact = _exact("started_at", _("Started"))
    completed_exact = _exact("completed_at", _("Completed"))
    next_attempt_exact = _exact("next_attempt_at", _("Next attempt"))
    cancel_requested_exact = _exact("cancel_requested_at", _("Cancel requested"))

    @admin.display(description=_("Duration"))
    def duration_display(self, job: ContainerJob) -> str:
        """The run time so far while the job is active, its whole run time once finished."""
        return format_duration(elapsed(job))

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("workers/", view(self.workers_view), name="{}_{}_workers".format(*info)),
            path("<path:object_id>/tail/", view(self.tail_view), name="{}_{}_tail".format(*info)),
            path(
                "<path:object_id>/download/<str:stream>/",
                view(self.download_view),
                name="{}_{}_download".format(*info),
            ),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="{}_{}_cancel".format(*info)),
            path("<path:object_id>/retry/", view(self.retry_view), name="{}_{}_retry".format(*info)),
            *super().get_urls(),
        ]

    # The job page ---------------------------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        job = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if job is not None and self.has_view_or_change_permission(request, job):
            context["console"] = self._console(request, job)
        return super().change_view(request, object_id, form_url, context)

    def _console(self, request: HttpRequest, job: ContainerJob) -> dict[str, Any]:
        usage = reading.usage_now(job)
        logs = reading.log_since(job, {})
        can_act = self.has_change_permission(request)
        return {
            "job": job,
            "finished": job.is_finished,
            "timestamps": [
                (label, exact(moment), moment.isoformat() if moment else "")
                for label, moment in (
                    (_("Created"), job.created_at),
                    (_("Launched"), job.launched_at),
                    (_("Started"), job.started_at),
                    (_("Completed"), job.completed_at),
                    (_("Cancel requested"), job.cancel_requested_at),
                )
            ],
            "elapsed": format_duration(elapsed(job)),
            "peak_memory": format_bytes(usage.peak_memory_bytes),
            "cpu": _percent(usage.cpu_percent),
            "usage_live": usage.live,
            "chart": usage_chart(reading.usage_samples(job)),
            "attempts": [
                {
                    "attempt": attempt,
                    "started": exact(attempt.started_at or attempt.launched_at),
                    "ended": exact(attempt.completed_at),
                    "peak_memory": format_bytes(attempt.peak_memory_bytes),
                    "cpu": _percent(attempt.cpu_percent),
                }
                for attempt in reading.attempts(job)
            ],
            "logs": logs,
            "streams": [
                {
                    "name": stream,
                    "slice": logs.streams[stream],
                    "download": self._url("download", job, stream),
                }
                for stream in reading.STREAMS
            ],
            "tail_url": self._url("tail", job),
            "poll_ms": POLL_MILLISECONDS,
            "can_cancel": can_act and not job.is_finished,
            "can_retry": can_act and job.is_finished,
            "cancel_url": self._url("cancel", job),
            "retry_url": self._url("retry", job),
        }

    def _url(self, view: str, job: ContainerJob, *args: str) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}"
        return reverse(name, args=[job.pk, *args], current_app=self.admin_site.name)

    def _viewable_job(self, request: HttpRequest, object_id: str) -> ContainerJob:
        job = self.get_object(request, object_id)  # None for a malformed id too
        if job is None:
            raise Http404(f"No job with id {object_id!r}.")
        if not self.has_view_or_change_permission(request, job):
            raise PermissionDenied
        return job

    def tail_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Return, as JSON, the output after the offsets given (``?stdout=N&stderr=M``), status and usage."""
        return require_GET(self._tail)(request, object_id)

    def _tail(self, request: HttpRequest, object_id: str) -> HttpResponse:
        job = self._viewable_job(request, object_id)
        offsets: dict[reading.Stream, int] = {}
        for stream in reading.STREAMS:
            raw = request.GET.get(stream, "0")
            if not raw.isdigit():
                return JsonResponse(
                    {
                        "error": f"The {stream} offset must be a whole number (the offset a previous answer gave), got {raw[:20]!r}."
                    },
                    status=400,
                )
            offsets[stream] = int(raw)
        logs = reading.log_since(job, offsets)
        usage = reading.usage_now(job)
        return JsonResponse(
            {
                "status": job.status,
                "status_label": str(job.get_status_display()),
                "finished": job.is_finished,
                "cancel_requested": job.cancel_requested_at is not None,
                "elapsed": format_duration(elapsed(job)),
                "peak_memory": format_bytes(usage.peak_memory_bytes),
                "cpu": _percent(usage.cpu_percent),
                "live": logs.live,
                "note": logs.note,
                "streams": {
                    stream: {
                        "text": piece.text,
                        "offset": piece.offset,
                        "reset": piece.reset,
                        "skipped": piece.skipped,
                    }
                    for stream, piece in logs.streams.items()
                },
                "now": timezone.now().isoformat(),
            }
        )

    def download_view(self, request: HttpRequest, object_id: str, stream: str) -> HttpResponse:
        """Return one stream's whole log as a text file."""
        job = self._viewable_job(request, object_id)
        if stream not in reading.STREAMS:
            raise Http404(f"No stream {stream!r}: choose stdout or stderr.")
        piece = reading.log_since(job, {}, limit=None).streams[stream]
        response = HttpResponse(piece.text, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-{stream}.txt"'
        return response

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The page's Cancel button: what the list's "Cancel" action does, for this job."""
        return require_POST(self._act)(request, object_id, jobactions.cancel_all)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The page's Retry button: what the list's "Retry" action does, for this job."""
        return require_POST(self._act)(request, object_id, jobactions.retry_all)

    def _act(
        self, request: HttpRequest, object_id: str, action: Callable[[list[ContainerJob]], list[Report]]
    ) -> HttpResponse:
        job = self._viewable_job(request, object_id)
        # The list actions' permission: the model's change permission (a job past PENDING is not
        # editable, yet may be cancelled or retried).
        if not self.has_change_permission(request):
            raise PermissionDenied
        self.report(request, action([job]))
        return HttpResponseRedirect(self._url("change", job))

    def report(self, request: HttpRequest, reports: list[Report]) -> None:
        """Show each report as an admin message."""
        for item in reports:
            self.message_user(request, item.text, item.level)

    # The workers page -----------------------------------------------------------------------------

    def workers_view(self, request: HttpRequest) -> HttpResponse:
        """List the workers holding jobs now: what they run, where, and how fresh their heartbeat is."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Workers"),
            "workers": worker_rows(),
        }
        return TemplateResponse(request, "admin/container_manager/containerjob/workers.html", context)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"
