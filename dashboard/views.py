"""The dashboard's pages: overview, a workflow, the instance list, an instance's timeline and actions.

Each view parses its request with a form (``dashboard.forms``), calls a service
(``dashboard.services``) or the public API (``workflows``), and renders. Pages render whole
on a plain request and their live fragment when htmx polls.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from dashboard import approval_cards, services, timeline
from dashboard.forms import (
    BulkActionForm,
    InstanceFilterForm,
    ResolveStepForm,
    RetryWithParamsForm,
    SendEventForm,
    StartInstanceForm,
)
from dashboard.http import back, require
from workflows import (
    FINISHED,
    DuplicateInstanceId,
    InvalidInstanceId,
    Permission,
    Status,
    StepStatus,
    WorkflowError,
    approvals,
    count_instances,
    get_workflow,
    list_instances,
    workflow_names,
)

if TYPE_CHECKING:
    from dashboard.http import HtmxHttpRequest


# --------------------------------------------------------------------------- overview


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    context = {
        "workflows": services.overview_workflows(),
        "recent": list_instances(limit=8)["instances"],
        "nav": "overview",
    }
    return render(request, "dashboard/overview.html", context)


# --------------------------------------------------------------------------- one workflow


@login_required
def workflow(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """A workflow's page: what it does, its schedules, its instances, and a form to start one."""
    if name not in workflow_names():
        raise Http404(f"No workflow named {name!r} is registered.")
    can_operate = request.user.has_perm(Permission.OPERATE)
    form = StartInstanceForm()
    if request.method == "POST":
        require(request, Permission.OPERATE)
        form = StartInstanceForm(request.POST)
        if form.is_valid():
            try:
                instance_id = services.start_instance(name, form.cleaned_data["id"], form.cleaned_data["params"])
            except (InvalidInstanceId, DuplicateInstanceId) as exc:
                form.add_error("id", str(exc))
            except WorkflowError as exc:  # too large, not storable
                form.add_error("params", str(exc))
            else:
                messages.success(request, f"Instance {instance_id} of {name} started.")
                return redirect("dashboard:instance", workflow=name, instance_id=instance_id)
    elif request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    context = {
        "w": services.workflow_page(name),
        "recent": list_instances(name, limit=20),
        "form": form,
        "can_operate": can_operate,
        "nav": "overview",
    }
    return render(request, "dashboard/workflow.html", context, status=400 if form.errors else 200)


# --------------------------------------------------------------------------- instance list


@login_required
@require_GET
def instances(request: HtmxHttpRequest) -> HttpResponse:
    form = InstanceFilterForm(request.GET)
    page: dict = {"instances": [], "next_cursor": None}
    errors: list[str] = []
    total = None
    if form.is_valid():
        try:
            page = list_instances(limit=50, **form.list_arguments())
            total = count_instances(**form.count_arguments())
        except WorkflowError as exc:
            errors.append(str(exc))
    else:
        errors = form.error_list()
    filters = form.query_values()
    context = {
        "page": page,
        "filters": filters,
        "errors": errors,
        "total": total,
        "statuses": ["active", *Status.values],
        "query": urlencode({k: v for k, v in filters.items() if v}),
        "workflow_names": workflow_names(),
        "cursor": request.GET.get("cursor") or "",
        "can_operate": request.user.has_perm(Permission.OPERATE),
        "nav": "instances",
    }
    if request.htmx and request.htmx.target == "instance-rows":
        return render(request, "dashboard/_instance_rows.html", context)
    return render(request, "dashboard/instances.html", context)


@login_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    require(request, Permission.OPERATE)
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        for message in form.errors.get("action", []):
            messages.error(request, str(message))
        return back(request, reverse("dashboard:instances"))
    action = form.cleaned_data["action"]
    result = services.bulk_action(action, form.cleaned_data["selected"])
    if result.done:
        messages.success(request, f"{action.capitalize()} requested for {result.done} instance(s).")
    for problem in result.problems[:10]:
        messages.error(request, problem)
    if not result.done and not result.problems:
        messages.info(request, "Select instances first.")
    return back(request, reverse("dashboard:instances"))


# --------------------------------------------------------------------------- instance detail


def _story(workflow: str, instance_id: str) -> tuple[Any, dict[str, Any]]:
    """The instance's handle (``workflows.api.InstanceHandle``, not public) and its story, or 404."""
    try:
        handle = get_workflow(workflow).get(instance_id)
        return handle, handle.describe()
    except WorkflowError:
        raise Http404(f"No instance {instance_id!r} of workflow {workflow!r}.") from None


@login_required
@require_GET
def instance(request: HtmxHttpRequest, workflow: str, instance_id: str) -> HttpResponse:
    handle, story = _story(workflow, instance_id)
    audit = handle.audit()
    finished = story["status"] in FINISHED
    waiting = [s for s in story["steps"] if s["kind"] == "wait_for_event" and s["status"] == StepStatus.WAITING]
    context = {
        "story": story,
        "tl": timeline.build(story, audit, zoom=_zoom(request), steps_from=_int(request.GET.get("steps_from"))),
        "live": not finished,
        "waiting_types": sorted({s["event_type"] for s in waiting}),
        "failed_step": handle.failed_step() if story["status"] == Status.ERRORED else None,
        "retrying": any(s["status"] == StepStatus.RETRYING for s in story["steps"]),
        "can_operate": request.user.has_perm(Permission.OPERATE),
        "approval_cards": _open_approval_cards(story, request.user),
        "trace_url": trace_link(story.get("trace_id")),
        "nav": "instances",
    }
    if request.htmx and request.htmx.target == "instance-live":
        response = render(request, "dashboard/_instance_live.html", context)
        if finished:
            response.status_code = HTMX_STOP_POLLING  # the last update: the instance is finished
        return response
    return render(request, "dashboard/instance.html", context)


def trace_link(trace_id: str | None) -> str:
    """The instance's trace in the configured trace UI (WORKFLOWS["TRACE_URL"]), or ""."""
    template = settings.WORKFLOWS.get("TRACE_URL", "") if trace_id else ""
    return template.format(trace_id=trace_id) if template else ""


def _zoom(request: HttpRequest) -> tuple[float, float] | None:
    """``?zoom=a,b``: the chart's range in seconds from the first step (ignored if malformed)."""
    try:
        a, b = (float(x) for x in request.GET.get("zoom", "").split(",", 1))
    except ValueError:
        return None
    return (a, b) if all(math.isfinite(x) for x in (a, b)) else None


def _int(text: str | None) -> int:
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 10 else 0


def _open_approval_cards(story: dict[str, Any], user: Any) -> dict[int, approval_cards.Card]:
    """A decision card for each open approval step of the instance, by request id."""
    open_ids = [s["approval"]["id"] for s in story["steps"] if s.get("approval") and s["approval"]["status"] == "open"]
    return {card.request.id: card for card in approval_cards.cards([approvals.get(i) for i in open_ids], user)}


# The actions that take input, and the form that checks it.
ACTION_FORMS: dict[str, type] = {
    "send-event": SendEventForm, "resolve": ResolveStepForm, "retry-with-params": RetryWithParamsForm,
}  # fmt: skip


@login_required
@require_POST
def action(request: HttpRequest, workflow: str, instance_id: str, name: str) -> HttpResponse:
    require(request, Permission.OPERATE)
    if name not in services.INSTANCE_ACTIONS:
        raise Http404(f"Unknown action {name!r}.")
    _story(workflow, instance_id)  # 404 for an unknown instance
    data: dict = {}
    form_class = ACTION_FORMS.get(name)
    if form_class is not None:
        form = form_class(request.POST)
        if not form.is_valid():
            for field_errors in form.errors.values():
                for message in field_errors:
                    messages.error(request, str(message))
            return redirect("dashboard:instance", workflow=workflow, instance_id=instance_id)
        data = form.cleaned_data
    try:
        messages.success(request, services.run_action(workflow, instance_id, name, data))
    except WorkflowError as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:instance", workflow=workflow, instance_id=instance_id)
