"""The dashboard: overview, instance list, timeline, actions, approval inbox.

It talks to the engine only through the public API (``workflows``), as users do. Pages
render whole on a plain request and render their live fragment when htmx polls.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, time
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from dashboard import timeline
from dashboard.decisions import DecisionRefused, decide
from dashboard.models import AuditEntry, Decision, NonApprovalEventType
from workflows import (
    WorkflowError,
    get_workflow,
    list_instances,
    list_pending_waits,
    list_workflows,
    workflow_names,
)
from workflows.models import Status

OPERATE = "workflows.operate_instance"
APPROVE = "workflows.approve_instance"
STATUSES = list(Status.values)
FINISHED = {"complete", "errored", "terminated"}


def _require(request, permission):
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"This needs the permission {permission}.")


def _excluded_types():
    return list(NonApprovalEventType.objects.values_list("event_type", flat=True))


def _back(request, fallback):
    target = request.POST.get("next") or fallback
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = fallback
    return redirect(target)


# --------------------------------------------------------------------------- overview


@login_required
@require_GET
def overview(request):
    workflows = list_workflows()
    for w in workflows:
        w["active"] = w["counts"]["queued"] + w["counts"]["running"] + w["counts"]["waitingForPause"]
    recent = list_instances(limit=8)["instances"]
    return render(request, "dashboard/overview.html", {"workflows": workflows, "recent": recent, "nav": "overview"})


# --------------------------------------------------------------------------- instance list


def _parse_date(text, end_of_day=False):
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return "invalid"
    return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)


@login_required
@require_GET
def instances(request):
    q = request.GET
    filters = {
        "workflow": q.get("workflow") or "",
        "status": q.get("status") or "",
        "q": (q.get("q") or "").strip(),
        "from": q.get("from") or "",
        "to": q.get("to") or "",
    }
    errors = []
    created_after = _parse_date(filters["from"])
    created_before = _parse_date(filters["to"], end_of_day=True)
    for name, value in (("from", created_after), ("to", created_before)):
        if value == "invalid":
            errors.append(f"'{filters[name]}' is not a date (use YYYY-MM-DD).")
    if filters["status"] and filters["status"] not in STATUSES:
        errors.append(f"'{filters['status']}' is not a status.")
    page = {"instances": [], "next_cursor": None}
    if not errors:
        try:
            page = list_instances(
                filters["workflow"] or None, status=filters["status"] or None, id_prefix=filters["q"] or None,
                created_after=created_after, created_before=created_before, cursor=q.get("cursor") or None, limit=50,
            )
        except WorkflowError as exc:
            errors.append(str(exc))
    query = urlencode({k: v for k, v in filters.items() if v})
    context = {
        "page": page, "filters": filters, "errors": errors, "statuses": STATUSES, "query": query,
        "workflow_names": workflow_names(), "cursor": q.get("cursor") or "",
        "can_operate": request.user.has_perm(OPERATE), "nav": "instances",
    }
    if request.htmx and request.htmx.target == "instance-rows":
        return render(request, "dashboard/_instance_rows.html", context)
    return render(request, "dashboard/instances.html", context)


BULK_ACTIONS = {"terminate": "terminate", "pause": "pause", "resume": "resume"}


@login_required
@require_POST
def bulk(request):
    _require(request, OPERATE)
    action = request.POST.get("action")
    if action not in BULK_ACTIONS:
        messages.error(request, f"Unknown bulk action {action!r}.")
        return _back(request, reverse("dashboard:instances"))
    done, problems = 0, []
    for ref in request.POST.getlist("selected")[:500]:
        workflow, _, instance_id = ref.partition("/")
        try:
            getattr(get_workflow(workflow).get(instance_id), BULK_ACTIONS[action])()
            AuditEntry.objects.create(workflow=workflow, instance_id=instance_id, user=request.user, action=action, details={"bulk": True})
            done += 1
        except WorkflowError as exc:
            problems.append(f"{ref}: {exc}")
    if done:
        messages.success(request, f"{action.capitalize()} requested for {done} instance(s).")
    for problem in problems[:10]:
        messages.error(request, problem)
    if not done and not problems:
        messages.info(request, "Select instances first.")
    return _back(request, reverse("dashboard:instances"))


# --------------------------------------------------------------------------- instance detail


def _story(workflow, instance_id):
    try:
        handle = get_workflow(workflow).get(instance_id)
        return handle, handle.describe()
    except WorkflowError:
        raise Http404(f"No instance {instance_id!r} of workflow {workflow!r}.") from None


@login_required
@require_GET
def instance(request, workflow, instance_id):
    handle, story = _story(workflow, instance_id)
    audit = list(AuditEntry.objects.filter(workflow=workflow, instance_id=instance_id).select_related("user"))
    pending = [s for s in story["steps"] if s["kind"] == "wait_for_event" and s["status"] == "waiting"]
    excluded = set(_excluded_types())
    context = {
        "story": story,
        "tl": timeline.build(story, audit),
        "live": story["status"] not in FINISHED,
        "approvals": [s for s in pending if s["event_type"] not in excluded],
        "failed_step": handle.failed_step() if story["status"] == "errored" else None,
        "retrying": any(s["status"] == "retrying" for s in story["steps"]),
        "decisions": {(d.step, d.count): d for d in Decision.objects.filter(workflow=workflow, instance_id=instance_id).select_related("user")},
        "can_operate": request.user.has_perm(OPERATE),
        "can_approve": request.user.has_perm(APPROVE),
        "nav": "instances",
    }
    if request.htmx and request.htmx.target == "instance-body":
        return render(request, "dashboard/_instance_body.html", context)
    return render(request, "dashboard/instance.html", context)


ACTIONS = {"pause", "resume", "terminate", "restart", "retry", "run-now", "send-event"}


@login_required
@require_POST
def action(request, workflow, instance_id, name):
    _require(request, OPERATE)
    if name not in ACTIONS:
        raise Http404(f"Unknown action {name!r}.")
    handle, _story_unused = _story(workflow, instance_id)
    details = {}
    try:
        if name == "retry":
            failed = handle.failed_step()
            if failed is None:
                raise WorkflowError("This instance has no failed step to retry from.")
            handle.restart(from_step=failed)
            details = {"from_step": failed[0], "count": failed[1]}
            messages.success(request, f"Retrying from step '{failed[0]}': earlier results are kept.")
        elif name == "run-now":
            woken = handle.retry_now()
            if not woken:
                raise WorkflowError("No step is waiting for a retry.")
            messages.success(request, f"{woken} step(s) will run now instead of after their retry delay.")
        elif name == "send-event":
            event_type = (request.POST.get("type") or "").strip()
            raw = request.POST.get("payload") or "{}"
            try:
                payload = json.loads(raw)
            except ValueError as exc:
                raise WorkflowError(f"The payload is not valid JSON: {exc}") from None
            handle.send_event(event_type, payload)
            details = {"type": event_type, "payload": payload}
            messages.success(request, f"Event '{event_type}' sent.")
        elif name == "restart":
            handle.restart()
            messages.success(request, "Restarted from the beginning.")
        else:
            getattr(handle, name)()
            messages.success(request, f"{name.capitalize()} requested; the instance is now {handle.status()['status']}.")
        AuditEntry.objects.create(workflow=workflow, instance_id=instance_id, user=request.user, action=name, details=details)
    except WorkflowError as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:instance", workflow=workflow, instance_id=instance_id)


# --------------------------------------------------------------------------- inbox


def approval_context(workflow_cls, wait) -> str | None:
    """What the workflow tells its approver: ``approval_context`` is a format string over
    the params, or a function of (params, {step name: output}). Never fails the page."""
    context = getattr(workflow_cls, "approval_context", None)
    params = wait["params"] if isinstance(wait["params"], dict) else {}
    try:
        if callable(context):
            return str(context(params, {o["step"]: o["output"] for o in wait["outputs"]}))
        if isinstance(context, str):
            return context.format(**params)
    except Exception:
        return None
    return None


@login_required
@require_GET
def inbox(request):
    waits = list_pending_waits(exclude_types=_excluded_types())
    # A decision already recorded (its event not yet taken by a worker) is not asked again.
    decided = set(
        Decision.objects.filter(instance_id__in=[w["id"] for w in waits]).values_list("workflow", "instance_id", "step", "count")
    )
    waits = [w for w in waits if (w["workflow"], w["id"], w["step"], w["count"]) not in decided]
    from workflows.definition import lookup

    for wait in waits:
        wait["context"] = approval_context(lookup(wait["workflow"]), wait)
    from workflows.queries import count_pending_waits

    total = count_pending_waits(exclude_types=_excluded_types())
    context = {"waits": waits, "more": max(0, total - len(waits) - len(decided)), "can_approve": request.user.has_perm(APPROVE), "nav": "inbox"}
    if request.htmx and request.htmx.target == "inbox-items":
        return render(request, "dashboard/_inbox_items.html", context)
    return render(request, "dashboard/inbox.html", context)


@login_required
@require_POST
def decision(request):
    _require(request, APPROVE)
    post = request.POST
    verdict = post.get("decision")
    if verdict not in ("approve", "reject"):
        messages.error(request, "Choose Approve or Reject.")
        return _back(request, reverse("dashboard:inbox"))
    try:
        count = int(post.get("count", "1"))
    except ValueError:
        count = 0
    try:
        decide(request.user, post.get("workflow", ""), post.get("instance_id", ""), post.get("step", ""), count,
               verdict == "approve", post.get("comment", ""))
        messages.success(request, f"{'Approved' if verdict == 'approve' else 'Rejected'} {post.get('workflow')}/{post.get('instance_id')}.")
    except DecisionRefused as exc:
        messages.warning(request, str(exc))
    return _back(request, reverse("dashboard:inbox"))
