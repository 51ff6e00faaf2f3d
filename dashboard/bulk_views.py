"""Bulk jobs from the instance list: every instance matching the current filter, not only the page.

"Apply to all matching" leads to a confirmation that shows the exact count and the filter;
confirming starts a job on the workers and opens its page: a progress bar that updates
live, each item's result (CSV download), and Cancel.
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.forms import BulkJobForm, InstanceFilterForm
from dashboard.http import require
from workflows import Permission, WorkflowError, bulk_jobs, count_instances

if TYPE_CHECKING:
    from dashboard.http import AuthenticatedHttpRequest, HtmxHttpRequest

HTMX_STOP_POLLING = 286


def _filter_from(query: QueryDict) -> tuple[InstanceFilterForm, dict[str, Any]]:
    form = InstanceFilterForm(query)
    if not form.is_valid():
        return form, {}
    arguments = form.count_arguments()
    return form, {key: value for key, value in arguments.items() if value not in (None, [], {})}


@login_required
@require_http_methods(["GET", "POST"])
def new_job(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the confirmation (count, filter, action); POST: start the job."""
    require(request, Permission.OPERATE)
    source = request.POST if request.method == "POST" else request.GET
    filters, chosen = _filter_from(source)
    form = BulkJobForm(source)
    problems = filters.error_list() if not filters.is_valid() else []
    if not problems and not form.is_valid():
        problems = [f"{name}: {m}" for name, ms in form.errors.items() for m in ms]
    count = None
    if not problems:
        try:
            count = count_instances(**chosen)
        except WorkflowError as exc:
            problems = [str(exc)]
    if request.method == "POST" and not problems and source.get("confirmed") == "yes":
        data = form.cleaned_data
        try:
            job = bulk_jobs.start(data["action"], chosen, output=data["output"], note=data["note"])
        except WorkflowError as exc:
            problems = [str(exc)]
        else:
            return redirect("dashboard:bulk-job", job_id=job.id)
    context = {
        "form": form, "filters": filters.query_values(), "chosen": chosen, "count": count, "problems": problems,
        "nav": "instances",
    }  # fmt: skip
    return render(request, "dashboard/bulk_confirm.html", context, status=422 if problems else 200)


def _job_or_404(job_id: int) -> Any:
    try:
        return bulk_jobs.get(job_id)
    except WorkflowError:
        raise Http404(f"No bulk job {job_id}.") from None


@login_required
@require_GET
def job_page(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(job_id)
    context = {
        "job": job, "refused": bulk_jobs.items(job_id, "refused", limit=200),
        "recent": bulk_jobs.items(job_id, "done", limit=20), "can_operate": request.user.has_perm(Permission.OPERATE),
        "nav": "instances",
    }  # fmt: skip
    if request.htmx and request.htmx.target == "bulk-progress":
        response = render(request, "dashboard/_bulk_progress.html", context)
        if not job.is_active:
            response.status_code = HTMX_STOP_POLLING
        return response
    return render(request, "dashboard/bulk_job.html", context)


@login_required
@require_GET
def job_results(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    """Every item of the job as CSV: workflow, instance, result, message, when."""
    _job_or_404(job_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bulk-job-{job_id}.csv"'
    writer = csv.writer(response)
    writer.writerow(["workflow", "instance_id", "result", "message", "finished_at"])
    after = 0
    while True:
        page = bulk_jobs.items(job_id, after=after, limit=1000)
        for item in page:
            finished = item["finished_at"].isoformat() if item["finished_at"] else ""
            writer.writerow([item["workflow"], item["instance_id"], item["status"], item["message"], finished])
        if len(page) < 1000:
            return response
        after = page[-1]["id"]


@login_required
@require_POST
def cancel_job(request: AuthenticatedHttpRequest, job_id: int) -> HttpResponse:
    require(request, Permission.OPERATE)
    _job_or_404(job_id)
    job = bulk_jobs.cancel(job_id)
    messages.info(request, f"Bulk job {job.id} is {job.status}; what was done stays done.")
    return redirect("dashboard:bulk-job", job_id=job_id)


@login_required
@require_GET
def job_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "dashboard/bulk_jobs.html", {"jobs": bulk_jobs.jobs(50), "nav": "instances"})
