"""The HTTP API's plumbing: authentication, permissions, JSON bodies and parameters, errors.

``endpoint`` wraps every view: it answers 405 for other methods, authenticates (a bearer
token or the session with its CSRF token), checks the permission the method needs, turns
``ApiError``, ``WorkflowError`` and refused decisions into JSON errors with a stable code,
and renders the view's ``(status, body)`` as JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.auth import authenticate
from api.errors import ApiError, from_refusal, from_workflow_error
from workflows import Permission, WorkflowError, acting, approvals, to_plain_json, tracing

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    class ApiRequest(HttpRequest):
        api_user: User  # set by ``endpoint`` once the caller is authenticated


# What an endpoint's view returns: the HTTP status and the body (made JSON-ready by ``to_plain_json``).
ApiResult = tuple[int, Any]


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
                # Every change the call makes is audited as this caller; with tracing on, what it
                # creates continues the caller's trace (its traceparent header).
                with acting(user, "api"), tracing.from_headers(request.headers):
                    status, body = view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except RawResponse as raw:
                return raw.response
            except approvals.DecisionRefused as exc:
                return from_refusal(exc).response()
            except WorkflowError as exc:
                return from_workflow_error(exc).response()
            except RequestDataTooBig:
                return ApiError(413, "too_large", "the request body is larger than the server accepts").response()
            return JsonResponse(
                to_plain_json(body), status=status, safe=False, json_dumps_params={"ensure_ascii": False}
            )

        return handler

    return wrap


def body(request: HttpRequest, *, default: Any = None) -> Any:
    if not request.body:
        if default is not None:
            return default
        raise ApiError(400, "invalid_json", "the request body must be JSON")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body is nested too deeply (JSON arrays and objects)") from None


def json_object(data: Any, allowed: set[str], what: str) -> dict:
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", f"{what} must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise ApiError(
            400, "invalid_request", f"unknown field(s) {sorted(unknown)} in {what}; allowed: {sorted(allowed)}"
        )
    return data


LEAP_SECOND = re.compile(r"(?<=T\d\d:\d\d):60(\.\d+)?")


def datetime_param(request: HttpRequest, name: str) -> datetime | None:
    text = request.GET.get(name)
    if text is None:
        return None
    return parse_datetime_text(text, name)


def parse_datetime_text(text: Any, name: str) -> datetime:
    """An ISO 8601 / RFC 3339 time (UTC when it has no offset), or a 400 naming ``name``."""
    if not isinstance(text, str) or len(text) > 64:
        raise ApiError(400, "invalid_request", f"{name} must be an ISO 8601 date or time string")
    # RFC 3339 allows a lower-case t and z, and a leap second (:60), which Python's parser does not.
    normal = text.upper().replace("Z", "+00:00")
    leap = LEAP_SECOND.search(normal)
    if leap:
        normal = normal[: leap.start()] + ":59.999999" + normal[leap.end() :]
    try:
        moment = datetime.fromisoformat(normal)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} {text!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        # In UTC, so the database never sees an offset it cannot store (PostgreSQL: at most 15:59).
        return moment.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, "invalid_request", f"{name} {text!r} is out of range") from None


def int_param(request: HttpRequest, name: str, default: int) -> int:
    text = request.GET.get(name)
    if text is None:
        return default
    try:
        number = int(text)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} {text!r:.40} is not a whole number") from None
    if abs(number) > 2**62:
        raise ApiError(400, "invalid_request", f"{name} {text:.40} is out of range (at most {2**62})")
    return number


class RawResponse(Exception):
    """Lets an endpoint answer with something other than JSON."""

    def __init__(self, response: HttpResponse) -> None:
        self.response = response
