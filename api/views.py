"""The HTTP API: JSON under /api/, the same operations and permissions as the dashboard.

Every endpoint needs a bearer token or a logged-in session. Reading needs only an active
account; creating and controlling instances needs ``workflows.operate_instance``; sending
an event needs ``workflows.approve_instance`` or ``workflows.operate_instance``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from django.core.exceptions import RequestDataTooBig
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.auth import authenticate
from api.errors import ApiError, from_workflow_error
from api.openapi import document
from workflows import (
    Permission,
    WorkflowError,
    get_workflow,
    health_status,
    list_workflows,
    metrics_text,
    to_plain_json,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    class ApiRequest(HttpRequest):
        api_user: User  # set by ``endpoint`` once the caller is authenticated


# What an endpoint's view returns: the HTTP status and the body (made JSON-ready by ``to_plain_json``).
ApiResult = tuple[int, Any]

OPERATE = Permission.OPERATE
APPROVE = Permission.APPROVE


def endpoint(
    **methods: tuple[Permission, ...] | None,
) -> Callable[[Callable[..., ApiResult]], Callable[..., HttpResponse]]:
    """Map HTTP methods to (permission or None); handles auth, CSRF, errors and JSON."""

    def wrap(view: Callable[..., ApiResult]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def handler(request: ApiRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    response = ApiError(
                        405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(methods)}"
                    ).response()
                    response["Allow"] = ", ".join(methods)
                    return response
                user, reason = authenticate(request)
                if user is None:
                    status = 403 if reason.startswith("CSRF") else 401
                    raise ApiError(status, "csrf_failed" if status == 403 else "not_authenticated", reason)
                request.api_user = user
                needed = methods[request.method]
                if needed and not any(user.has_perm(p) for p in needed):
                    raise ApiError(
                        403,
                        "permission_denied",
                        f"this needs the permission {' or '.join(repr(str(p)) for p in needed)}",
                    )
                status, body = view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except _Raw as raw:
                return raw.response
            except WorkflowError as exc:
                return from_workflow_error(exc).response()
            except RequestDataTooBig:
                return ApiError(413, "too_large", "the request body is larger than the server accepts").response()
            return JsonResponse(
                to_plain_json(body), status=status, safe=False, json_dumps_params={"ensure_ascii": False}
            )

        return handler

    return wrap


def _body(request: HttpRequest, *, default: Any = None) -> Any:
    if not request.body:
        if default is not None:
            return default
        raise ApiError(400, "invalid_json", "the request body must be JSON")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def _object(data: Any, allowed: set[str], what: str) -> dict:
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", f"{what} must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise ApiError(
            400, "invalid_request", f"unknown field(s) {sorted(unknown)} in {what}; allowed: {sorted(allowed)}"
        )
    return data


def _datetime_param(request: HttpRequest, name: str) -> datetime | None:
    text = request.GET.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} {text!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        # In UTC, so the database never sees an offset it cannot store (PostgreSQL: at most 15:59).
        return moment.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, "invalid_request", f"{name} {text!r} is out of range") from None


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    text = request.GET.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} {text!r} is not a whole number") from None


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


@endpoint(GET=None, POST=(OPERATE,))
def instances(request: HttpRequest, name: str) -> ApiResult:
    handle = get_workflow(name)
    if request.method == "POST":
        data = _object(_body(request, default={}), {"id", "params"}, "the body")
        instance = handle.create(id=data.get("id"), params=data.get("params"))
        return 201, {"id": instance.id, "workflow": handle.name, "status": instance.status()["status"]}
    status = request.GET.get("status")
    if status is not None and not status:
        raise ApiError(400, "invalid_request", "status is empty; leave it out to list every status")
    return 200, handle.list(
        status=status,
        created_after=_datetime_param(request, "created_after"),
        created_before=_datetime_param(request, "created_before"),
        id_prefix=request.GET.get("q") or None,
        cursor=request.GET.get("cursor") or None,
        limit=_int_param(request, "limit", 50),
    )


@endpoint(POST=(OPERATE,))
def instances_batch(request: HttpRequest, name: str) -> ApiResult:
    handle = get_workflow(name)
    items = _body(request)
    if not isinstance(items, list):
        raise ApiError(400, "invalid_request", "the body must be a JSON array of {id, params} objects")
    created = handle.create_batch([_object(item, {"id", "params"}, f"item {n}") for n, item in enumerate(items)])
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


@endpoint(PATCH=(OPERATE,))
def instance_status(request: HttpRequest, name: str, instance_id: str) -> ApiResult:
    instance = get_workflow(name).get(instance_id)
    data = _object(_body(request), {"status", "from_step", "count"}, "the body")
    action = data.get("status")
    if action not in STATUS_ACTIONS:
        raise ApiError(400, "invalid_request", f"status must be one of {', '.join(STATUS_ACTIONS)}, got {action!r}")
    if action != "restart" and ("from_step" in data or "count" in data):
        raise ApiError(400, "invalid_request", "from_step and count go with status 'restart' only")
    if action == "restart":
        from_step = data.get("from_step")
        count = data.get("count", 1)
        if from_step is None and "count" in data:
            raise ApiError(400, "invalid_request", "count needs from_step")
        instance.restart(from_step=None if from_step is None else (from_step, count))
    else:
        getattr(instance, action)()
    return 200, {"id": instance.id, "workflow": name, "status": instance.status()["status"]}


@endpoint(POST=(APPROVE, OPERATE))
def instance_event(request: HttpRequest, name: str, instance_id: str, event_type: str) -> ApiResult:
    instance = get_workflow(name).get(instance_id)
    payload = _body(request, default={}) if request.body else None
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
    raise _Raw(HttpResponse(metrics_text(), content_type="text/plain; version=0.0.4"))


class _Raw(Exception):
    """Lets an endpoint answer with something other than JSON."""

    def __init__(self, response: HttpResponse) -> None:
        self.response = response
