"""Approvals over HTTP: the requests a caller may decide, one request, and deciding it.

``GET /api/approvals`` lists the caller's open requests (``scope=all``: every open request,
for operators; ``scope=decided``: history). ``POST /api/approvals/{id}/decision`` decides
one: 200 with the request, or the refusal as an error whose code is its reason (403 not an
approver or their own request, 409 already decided or closed, 422 invalid form data with
the field errors, 404 no such request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api.errors import ApiError, row_id
from api.http import ApiResult, body, datetime_param, endpoint, int_param, json_object

if TYPE_CHECKING:
    from api.http import ApiRequest
from workflows import ApprovalStatus, Permission, approvals

SCOPES = ("mine", "all", "decided")
UNKNOWN = object()


def _as_json(request: approvals.Request, user: Any) -> dict[str, Any]:
    refusal = request.refusal(user)
    return {**request.as_dict(), "can_decide": refusal is None, "refusal": refusal.reason if refusal else None}


@endpoint(GET=None)
def approval_list(request: ApiRequest) -> ApiResult:
    user = request.api_user
    scope = request.GET.get("scope", "mine")
    workflow = request.GET.get("workflow") or None
    limit = int_param(request, "limit", 50)
    if scope not in SCOPES:
        raise ApiError(400, "invalid_request", f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not 1 <= limit <= 500:
        raise ApiError(400, "invalid_request", f"limit must be 1 to 500, got {limit}")
    # The history's filters are checked whatever the scope (and used by scope=decided only).
    since, until = datetime_param(request, "since"), datetime_param(request, "until")
    outcome = request.GET.get("outcome") or None
    if outcome is not None and outcome not in ApprovalStatus.values or outcome == ApprovalStatus.OPEN:
        raise ApiError(400, "invalid_request", "outcome must be one of approved, rejected, timed_out, cancelled")
    if scope == "mine":
        found = approvals.pending(user, workflow=workflow, limit=limit)
    elif scope == "all":
        if not user.has_perm(Permission.OPERATE):
            raise ApiError(403, "permission_denied", f"scope=all needs the permission {Permission.OPERATE.value!r}")
        found = approvals.pending(workflow=workflow, limit=limit)
    else:
        decider = _decider(request, user)
        found = (
            []
            if decider is UNKNOWN
            else approvals.decided(
                decider=decider, workflow=workflow, outcome=outcome, since=since, until=until, limit=limit
            )
        )
    return 200, {"approvals": [_as_json(r, user) for r in found]}


def _decider(request: ApiRequest, user: Any) -> Any:
    """Whose decisions the history shows: ``decider`` is a username, "me" (the default) or "any"."""
    from django.contrib.auth import get_user_model

    name = request.GET.get("decider") or "me"
    if name == "any":
        return None
    if name == "me":
        return user
    return get_user_model().objects.filter(username=name).first() or UNKNOWN  # nobody by that name decided anything


@endpoint(GET=None)
def approval_detail(request: ApiRequest, request_id: str) -> ApiResult:
    return 200, _as_json(approvals.get(_request_id(request_id)), request.api_user)


@endpoint(POST=None)
def approval_decision(request: ApiRequest, request_id: str) -> ApiResult:
    data = json_object(body(request), {"approved", "comment", "data"}, "the body")
    if not isinstance(data.get("approved"), bool):
        raise ApiError(400, "invalid_request", "approved must be true or false")
    comment = data.get("comment", "")
    if not isinstance(comment, str):
        raise ApiError(400, "invalid_request", "comment must be a string")
    form_data = data.get("data")
    if form_data is not None and not isinstance(form_data, dict):
        raise ApiError(400, "invalid_request", "data must be an object of form fields")
    user = request.api_user
    decided = approvals.decide(
        _request_id(request_id), user=user, approved=data["approved"], comment=comment, data=form_data, channel="api"
    )
    return 200, _as_json(decided, user)


def _request_id(text: str) -> int:
    return row_id(text, "there is no approval request")
