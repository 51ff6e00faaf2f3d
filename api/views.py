"""The HTTP API: JSON under /api/, the same operations and permissions as the dashboard.

Every endpoint needs a bearer token or a logged-in session. Reading needs only an active
account; creating and controlling instances needs ``workflows.operate_instance``; sending
an event needs ``workflows.send_event`` or ``workflows.operate_instance``. Approvals are
decided through their own endpoints (``api/approvals.py``), never by sending an event.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse

from api.errors import ApiError
from api.http import ApiResult, RawResponse, body, datetime_param, endpoint, int_param, json_object
from api.openapi import document
from workflows import (
    Permission,
    get_workflow,
    health_status,
    list_workflows,
    metrics_text,
)


@endpoint(GET=None)
def openapi(request: HttpRequest) -> ApiResult:
    return 200, document(request)


@endpoint(GET=None)
def workflows(request: HttpRequest) -> ApiResult:
    return 200, {"workflows": list_workflows()}


@endpoint(GET=None)
def workflow_detail(request: HttpRequest, name: str) -> ApiResult:
    handle = get_workflow(name)
    return 200, list_workflows([handle.name])[0]


@endpoint(GET=None, POST=(Permission.OPERATE,))
def instances(request: HttpRequest, name: str) -> ApiResult:
    handle = get_workflow(name)
    if request.method == "POST":
        data = json_object(body(request, default={}), {"id", "params"}, "the body")
        instance = handle.create(id=data.get("id"), params=data.get("params"))
        return 201, {"id": instance.id, "workflow": handle.name, "status": instance.status()["status"]}
    status = request.GET.get("status")
    if status is not None and not status:
        raise ApiError(400, "invalid_request", "status is empty; leave it out to list every status")
    return 200, handle.list(
        status=status,
        created_after=datetime_param(request, "created_after"),
        created_before=datetime_param(request, "created_before"),
        id_prefix=request.GET.get("q") or None,
        cursor=request.GET.get("cursor") or None,
        limit=int_param(request, "limit", 50),
        **instance_filters(request),
    )


def instance_filters(request: HttpRequest) -> dict[str, Any]:
    """The filters beyond status and dates: ``attr.<name>=<value>`` (search attributes),
    ``failed_step`` and ``error_name``."""
    found: dict[str, Any] = {}
    attributes = {key[5:]: value for key, value in request.GET.items() if key.startswith("attr.")}
    if attributes:
        found["attributes"] = attributes
    for key in ("failed_step", "error_name", "version"):
        if request.GET.get(key):
            found[key] = request.GET[key]
    return found


@endpoint(POST=(Permission.OPERATE,))
def instances_batch(request: HttpRequest, name: str) -> ApiResult:
    handle = get_workflow(name)
    items = body(request)
    if not isinstance(items, list):
        raise ApiError(400, "invalid_request", "the body must be a JSON array of {id, params} objects")
    created = handle.create_batch([json_object(item, {"id", "params"}, f"item {n}") for n, item in enumerate(items)])
    return 201, {
        "created": [{"id": i.id, "workflow": handle.name} for i in created],
        "skipped": len(items) - len(created),
    }


@endpoint(GET=None)
def instance_detail(request: HttpRequest, name: str, instance_id: str) -> ApiResult:
    instance = get_workflow(name).get(instance_id)
    simple = request.GET.get("simple", "false")
    if simple not in ("true", "false"):
        raise ApiError(400, "invalid_request", f"simple must be 'true' or 'false', got {simple!r}")
    story = instance.describe()
    if simple == "true":
        story["step_count"] = len(story.pop("steps"))
        story.pop("events")
        story.pop("earlier_steps")
    return 200, story


STATUS_ACTIONS = ("pause", "resume", "terminate", "restart")


@endpoint(PATCH=(Permission.OPERATE,))
def instance_status(request: HttpRequest, name: str, instance_id: str) -> ApiResult:
    instance = get_workflow(name).get(instance_id)
    data = json_object(body(request), {"status", "from_step", "count"}, "the body")
    action = data.get("status")
    if action not in STATUS_ACTIONS:
        raise ApiError(400, "invalid_request", f"status must be one of {', '.join(STATUS_ACTIONS)}, got {action!r}")
    if action != "restart" and ("from_step" in data or "count" in data):
        raise ApiError(400, "invalid_request", "from_step and count go with status 'restart' only")
    if action == "restart":
        from_step = data.get("from_step")
        count = data.get("count", 1)
        if isinstance(count, float) and count.is_integer():
            count = int(count)  # JSON's 2.0 is the integer 2
        if from_step is None and "count" in data:
            raise ApiError(400, "invalid_request", "count needs from_step")
        instance.restart(from_step=None if from_step is None else (from_step, count))
    else:
        getattr(instance, action)()
    return 200, {"id": instance.id, "workflow": name, "status": instance.status()["status"]}


@endpoint(POST=(Permission.SEND_EVENT, Permission.OPERATE))
def instance_event(request: HttpRequest, name: str, instance_id: str, event_type: str) -> ApiResult:
    instance = get_workflow(name).get(instance_id)
    payload = body(request, default={}) if request.body else None
    key = request.headers.get("Idempotency-Key")
    delivered = instance.send_event(event_type, payload, idempotency_key=key)
    return 202, {
        "id": instance.id,
        "workflow": name,
        "type": event_type,
        "status": instance.status()["status"],
        "duplicate": not delivered,
    }


def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors: 200 while the database answers, 503 when it does not.

    Open without login on purpose, and says nothing sensitive: counts and a lag only.
    """
    try:
        state = health_status()
    except DatabaseError as exc:
        return JsonResponse({"status": "down", "database": f"unreachable: {type(exc).__name__}"}, status=503)
    state["status"] = "ok" if state["workers_alive"] else "degraded: no worker has reported in the last 30 s"
    return JsonResponse(state)


@endpoint(GET=None)
def metrics(request: HttpRequest) -> NoReturn:
    """Prometheus metrics (scrape with an API token as a bearer token)."""
    raise RawResponse(HttpResponse(metrics_text(), content_type="text/plain; version=0.0.4"))
