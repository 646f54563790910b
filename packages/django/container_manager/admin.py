"""Admin for hosts, environment templates and jobs: health, logs, queue summary, and job events.

Every action calls a model method (request_cancel and requeue through jobactions, duplicate) or the
health helper; the admin never assigns a status. The job page's console, the workers page and the
console's columns live in console/views.py (JobConsole, the job admin's base). Secrets in host
configs are shown masked; environment variables (templates, job overrides) are write-only: their
names are shown, their values never.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from container_manager import jobactions
from container_manager.console.filters import WorkerFilter
from container_manager.console.throughput import last_hour
from container_manager.console.views import JobConsole
from container_manager.envforms import WriteOnlyEnvMixin
from container_manager.estimates import EstimatingPaginator, RowCount, row_count
from container_manager.forms import ContainerJobForm, EnvironmentVariableTemplateForm, ExecutorHostForm
from container_manager.health import check_host
from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import ACTIVE_STATUSES, CLAIMABLE_STATUSES, JobStatus
from container_manager.tasks.display import redacted_task
from container_manager.workers import WorkerProcess
from container_manager_core.envfile import EnvSyntaxError

if TYPE_CHECKING:
    _HostAdminBase = admin.ModelAdmin[ExecutorHost]
    _TemplateAdminBase = admin.ModelAdmin[EnvironmentVariableTemplate]
    _WorkerAdminBase = admin.ModelAdmin[WorkerProcess]
else:  # ModelAdmin is generic only in the type stubs.
    _HostAdminBase = _TemplateAdminBase = _WorkerAdminBase = admin.ModelAdmin

_STATUS_COLOURS = {
    JobStatus.PENDING: "#6c757d",
    JobStatus.LAUNCHING: "#0d6efd",
    JobStatus.RUNNING: "#0d6efd",
    JobStatus.RETRYING: "#fd7e14",
    JobStatus.COMPLETED: "#198754",
    JobStatus.FAILED: "#dc3545",
    JobStatus.TIMEOUT: "#dc3545",
    JobStatus.CANCELLED: "#6c757d",
}


def badge(text: str | Promise, colour: str) -> SafeString:
    """Return a small coloured label."""
    return format_html(
        '<span class="cm-badge" style="background:{};color:#fff;padding:2px 8px;border-radius:8px;'
        'font-size:11px;white-space:nowrap">{}</span>',
        colour,
        text,
    )


def env_change_message(form: Any, default: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Name the variables an edit set and removed in the history entry; never their values."""
    summary = form.change_summary() if isinstance(form, WriteOnlyEnvMixin) else []
    if not summary:
        return default
    return [*default, {"changed": {"fields": summary}}]


def pretty_json(value: Any) -> SafeString:
    """Return ``value`` as indented JSON in a <pre> block."""
    return format_html(
        '<pre class="cm-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, default=str)
    )


def active_jobs_per_host() -> Coalesce:
    """Each host's launching and running jobs, counted through cm_job_host_status_idx.

    A subquery per host rather than a join over all the hosts' jobs, which would read every job
    (the finished history too) on each page load.
    """
    active = (
        ContainerJob.objects.filter(docker_host=OuterRef("pk"), status__in=ACTIVE_STATUSES)
        .order_by()
        .values("docker_host")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(active), 0)


# Hosts -------------------------------------------------------------------------------------------


@admin.register(ExecutorHost)
class ExecutorHostAdmin(_HostAdminBase):
    form = ExecutorHostForm
    list_display = [
        "name",
        "executor_type",
        "host_type",
        "connection_string",
        "is_active",
        "health_badge",
        "last_health_check",
        "response_time",
        "load",
    ]
    list_filter = ["executor_type", "host_type", "is_active", "healthy"]
    search_fields = ["name", "connection_string"]
    actions = ["check_health"]
    readonly_fields = [
        "health_badge",
        "last_health_check",
        "last_health_error",
        "health_response_time",
        "engine_memory_mb",
        "engine_cpus",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "executor_type", "host_type", "connection_string", "is_active"]}),
        (_("Scheduling"), {"fields": ["weight", "max_concurrent_jobs", "auto_pull_images"]}),
        (
            _("Capacity"),
            {
                "fields": ["memory_capacity_mb", "cpu_capacity", "engine_memory_mb", "engine_cpus"],
                "description": _(
                    "Jobs are placed only where their memory and CPU limits fit beside the host's "
                    "active jobs: within the override if set, else the engine's size from the last "
                    "health check, times MEMORY_OVERCOMMIT / CPU_OVERCOMMIT. Neither: unbounded."
                ),
            },
        ),
        (
            _("TLS"),
            {"fields": ["tls_enabled", "tls_verify", "tls_ca_cert", "tls_client_cert", "tls_client_key"]},
        ),
        (_("Plugin settings"), {"fields": ["executor_config"]}),
        (
            _("Health"),
            {"fields": ["health_badge", "last_health_check", "last_health_error", "health_response_time"]},
        ),
        (_("Timestamps"), {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExecutorHost]:
        return super().get_queryset(request).annotate(active_jobs=active_jobs_per_host())

    @admin.display(description=_("Health"), ordering="healthy")
    def health_badge(self, host: ExecutorHost) -> SafeString:
        if host.last_health_check is None:
            return badge(_("unchecked"), "#6c757d")
        if host.healthy:
            return badge(_("healthy"), "#198754")
        return format_html("{} {}", badge(_("unhealthy"), "#dc3545"), host.last_health_error)

    @admin.display(description=_("Response"), ordering="health_response_time")
    def response_time(self, host: ExecutorHost) -> str:
        if host.health_response_time is None:
            return "-"
        return f"{host.health_response_time * 1000:.0f} ms"

    @admin.display(description=_("Running / capacity"), ordering="active_jobs")
    def load(self, host: ExecutorHost) -> str:
        return f"{getattr(host, 'active_jobs', 0)} / {host.max_concurrent_jobs}"

    @admin.action(description=_("Check health of selected hosts"), permissions=["change"])
    def check_health(self, request: HttpRequest, queryset: QuerySet[ExecutorHost]) -> None:
        for host in queryset:
            status = check_host(host)
            if status.healthy:
                self.message_user(
                    request, f"{host.name}: healthy ({status.response_time * 1000:.0f} ms).", messages.SUCCESS
                )
            else:
                self.message_user(request, f"{host.name}: unhealthy: {status.error}", messages.ERROR)


# Environment templates ---------------------------------------------------------------------------


@admin.register(EnvironmentVariableTemplate)
class EnvironmentVariableTemplateAdmin(_TemplateAdminBase):
    form = EnvironmentVariableTemplateForm
    list_display = ["name", "description", "variable_names", "updated_at"]
    search_fields = ["name", "description"]
    fields = [
        "name",
        "description",
        "remove_variables",
        "environment_variables_text",
        "replace_all_variables",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["created_at", "updated_at"]

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        return env_change_message(form, super().construct_change_message(request, form, formsets, add))

    @admin.display(description=_("Variables"))
    def variable_names(self, template: EnvironmentVariableTemplate) -> str:
        # Names only: values may be secrets.
        try:
            return ", ".join(template.get_environment_variables()) or "-"
        except EnvSyntaxError as exc:
            return f"invalid: {exc}"


# Jobs --------------------------------------------------------------------------------------------


@admin.register(ContainerJob)
class ContainerJobAdmin(JobConsole):
    form = ContainerJobForm
    list_display = [
        "job_name",
        "status_badge",
        "docker_host",
        "docker_image",
        "created_exact",
        "duration_display",
        "exit_code",
    ]
    # Usable on a million rows: the status, host and creation-time filters read an index, the
    # page's count is estimated when large (estimates.py), and the unfiltered total is not counted.
    # No docker_image filter or date hierarchy: each would read every row to list its choices.
    # The termination reason and worker filters list no rows (choices; the live workers), but
    # filtering by them has no index of its own yet.
    list_filter = ["status", "termination_reason", "docker_host", WorkerFilter, "created_at"]
    search_fields = ["name", "id", "docker_image", "command"]
    list_select_related = ["docker_host"]
    paginator = EstimatingPaginator
    show_full_result_count = False
    actions = ["cancel_jobs", "retry_jobs", "duplicate_jobs"]
    _state_fields = [
        "status_badge",
        "termination_reason",
        "exit_code",
        "execution_id",
        "worker_id",
        "attempt",
        "retry_count",
        "next_attempt_exact",
        "cancel_requested_exact",
        "created_exact",
        "launched_exact",
        "started_exact",
        "completed_exact",
        "duration_display",
        "last_error",
        "logs_link",
    ]
    readonly_fields = [*_state_fields, "environment_overrides_masked", "task_masked"]

    def get_fieldsets(self, request: HttpRequest, obj: ContainerJob | None = None) -> Any:
        # A read-only page renders raw field values; show the masked environment there instead.
        editable = self.has_change_permission(request, obj) if obj is not None else True
        env_fields = (
            ["remove_overrides", "environment_overrides", "replace_all_overrides"]
            if editable
            else ["environment_overrides_masked"]
        )
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (
                None,
                {"fields": ["name", "docker_image", "command", "command_form", "working_directory", "user"]},
            ),
            (
                _("Placement"),
                {"fields": ["executor_type", "docker_host", "priority", "scheduled_for", "max_retries"]},
            ),
            (_("Environment"), {"fields": ["environment_template", *env_fields, "network_configuration"]}),
            (_("Limits"), {"fields": ["memory_limit", "cpu_limit", "pids_limit", "timeout_seconds"]}),
        ]
        if obj is not None and obj.task is not None:
            fieldsets.insert(1, (_("Django task"), {"fields": ["task_masked"]}))
        if obj is not None:
            fieldsets.append((_("State"), {"fields": self._state_fields}))
        return fieldsets

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        return env_change_message(form, super().construct_change_message(request, form, formsets, add))

    def has_change_permission(self, request: HttpRequest, obj: ContainerJob | None = None) -> bool:
        # Only a queued job may be edited; use "retry" or "duplicate" for the others.
        if obj is not None and obj.status != JobStatus.PENDING:
            return False
        return super().has_change_permission(request, obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        from container_manager.conf import app_settings

        settings = app_settings()
        return {
            "memory_limit": settings.DEFAULT_MEMORY_LIMIT_MB,
            "cpu_limit": settings.DEFAULT_CPU_LIMIT,
            "pids_limit": settings.DEFAULT_PIDS_LIMIT,
            "timeout_seconds": settings.DEFAULT_TIMEOUT_SECONDS,
            "user": settings.DEFAULT_USER,
            **super().get_changeform_initial_data(request),
        }

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "queue-summary/",
                self.admin_site.admin_view(self.queue_summary_view),
                name="{}_{}_queue_summary".format(*info),
            ),
            path(
                "<path:object_id>/logs/",
                self.admin_site.admin_view(self.logs_view),
                name="{}_{}_logs".format(*info),
            ),
            *super().get_urls(),
        ]

    # Columns and read-only fields

    @admin.display(description=_("Job"), ordering="name")
    def job_name(self, job: ContainerJob) -> str:
        return job.name or str(job.id)[:8]

    @admin.display(description=_("Status"), ordering="status")
    def status_badge(self, job: ContainerJob) -> SafeString:
        label = badge(job.get_status_display(), _STATUS_COLOURS.get(JobStatus(job.status), "#6c757d"))
        if job.cancel_requested_at is not None and not job.is_finished:
            return format_html("{} {}", label, badge(_("cancel requested"), "#fd7e14"))
        return label

    @admin.display(description=_("Environment overrides"))
    def environment_overrides_masked(self, job: ContainerJob) -> str:
        # Names only: values are write-only, whether or not they look secret.
        overrides = job.environment_overrides
        return ", ".join(sorted(map(str, overrides))) if isinstance(overrides, dict) and overrides else "-"

    @admin.display(description=_("Django task"))
    def task_masked(self, job: ContainerJob) -> SafeString:
        return pretty_json(redacted_task(job.task))

    @admin.display(description=_("Logs"))
    def logs_link(self, job: ContainerJob) -> SafeString:
        url = reverse(
            "admin:container_manager_containerjob_logs", args=[job.pk], current_app=self.admin_site.name
        )
        return format_html('<a href="{}">{}</a>', url, _("View stdout, stderr and events"))

    # Views

    def logs_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Show a job's stdout and stderr apart, its parsed output, and its lifecycle events."""
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404(f"No job with id {object_id!r}.")
        if not self.has_view_or_change_permission(request, job):
            raise PermissionDenied
        parsed = (
            None if job.parsed_output is None else json.dumps(job.parsed_output, indent=2, sort_keys=True)
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Logs of %(job)s") % {"job": job},
            "job": job,
            "status_badge": self.status_badge(job),
            "parsed_output": parsed,
        }
        return TemplateResponse(request, "admin/container_manager/containerjob/logs.html", context)

    def queue_summary_view(self, request: HttpRequest) -> HttpResponse:
        """Show job counts by status and each host's running jobs against its capacity."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        # Counts estimated where large (estimates.py): the summary must open on a million jobs.
        counts = {status: row_count(ContainerJob.objects.filter(status=status)) for status in JobStatus}
        by_status = [
            {
                "status": status,
                "label": status.label,
                "count": counts[status].value,
                "shown": str(counts[status]),
            }
            for status in JobStatus
        ]
        queued = sorted(CLAIMABLE_STATUSES)
        hosts = ExecutorHost.objects.annotate(active_jobs=active_jobs_per_host()).order_by("name")
        total = sum(count.value for count in counts.values())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Queue summary"),
            "by_status": by_status,
            "last_hour": last_hour(),
            "total": str(RowCount(total, estimated=any(count.estimated for count in counts.values()))),
            "unassigned_queued": row_count(
                ContainerJob.objects.filter(docker_host__isnull=True, status__in=queued)
            ),
            "hosts": [
                {
                    "host": host,
                    "active": host.active_jobs,
                    "queued": str(
                        row_count(ContainerJob.objects.filter(docker_host=host, status__in=queued))
                    ),
                    "capacity": host.max_concurrent_jobs,
                    "full": host.active_jobs >= host.max_concurrent_jobs,
                }
                for host in hosts
            ],
        }
        return TemplateResponse(request, "admin/container_manager/containerjob/queue_summary.html", context)

    # Actions: each calls the model's event method and reports what it could not do.

    @admin.action(description=_("Cancel selected jobs"), permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[ContainerJob]) -> None:
        self.report(request, jobactions.cancel_all(queryset))

    @admin.action(description=_("Retry selected finished jobs"), permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[ContainerJob]) -> None:
        self.report(request, jobactions.retry_all(queryset))

    @admin.action(description=_("Duplicate selected jobs"), permissions=["add"])
    def duplicate_jobs(self, request: HttpRequest, queryset: QuerySet[ContainerJob]) -> None:
        done = 0
        for job in queryset:
            try:
                job.duplicate()
            except ValidationError as exc:
                self.message_user(request, f"{job}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"Queued {done} duplicate job(s).", messages.SUCCESS)


@admin.register(WorkerProcess)
class WorkerProcessAdmin(_WorkerAdminBase):
    """The workers as each last reported itself; written by the workers only, so read-only here."""

    list_display = (
        "worker_id",
        "live",
        "hostname",
        "pid",
        "concurrency",
        "running_jobs",
        "heartbeat_at",
        "started_at",
        "stopped_at",
    )
    list_filter = ("hostname",)
    search_fields = ("worker_id", "hostname")

    @admin.display(boolean=True, description=_("live"))
    def live(self, worker: WorkerProcess) -> bool:
        from container_manager.conf import app_settings

        return worker.is_live(app_settings().LEASE_SECONDS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WorkerProcess | None = None) -> bool:
        return False
