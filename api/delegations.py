"""Away and delegation over HTTP: ``GET``/``POST /api/delegations``, ``DELETE /api/delegations/{id}``.

The caller sets their own absences only (``{"delegate", "starts", "ends", "note"}``); a
window the engine refuses (ends before it starts, overlaps another absence, the delegate
is away themselves) is a 409 naming the problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model

from api.errors import ApiError, row_id
from api.http import ApiResult, RawResponse, body, endpoint, json_object, parse_datetime_text
from workflows import WorkflowError, approvals

if TYPE_CHECKING:
    from api.http import ApiRequest


def _as_json(absence: Any) -> dict[str, Any]:
    return {
        "id": absence.pk, "user": absence.user.get_username(), "delegate": absence.delegate.get_username(),
        "starts": absence.starts, "ends": absence.ends, "note": absence.note,
    }  # fmt: skip


@endpoint(GET=None, POST=None)
def delegation_list(request: ApiRequest) -> ApiResult:
    user = request.api_user
    if request.method == "GET":
        return 200, {
            "absences": [_as_json(a) for a in approvals.absences(user)],
            "standing_in_for": [_as_json(a) for a in approvals.standing_in_for(user)],
        }
    data = json_object(body(request), {"delegate", "starts", "ends", "note"}, "the body")
    for field in ("delegate", "starts", "ends"):
        if field not in data:
            raise ApiError(400, "invalid_request", f"{field} is required")
    note = data.get("note", "")
    if not isinstance(note, str):
        raise ApiError(400, "invalid_request", "note must be a string")
    name = data["delegate"]
    delegate = get_user_model().objects.filter(username=name, is_active=True).first() if isinstance(name, str) else None
    if delegate is None:
        raise ApiError(409, "invalid_absence", f"delegate {name!r:.160} is not an active user")
    starts, ends = parse_datetime_text(data["starts"], "starts"), parse_datetime_text(data["ends"], "ends")
    try:
        absence = approvals.set_away(user, delegate=delegate, starts=starts, ends=ends, note=note)
    except WorkflowError as exc:
        raise ApiError(409, "invalid_absence", str(exc)) from None
    return 201, _as_json(absence)


@endpoint(DELETE=None)
def delegation_detail(request: ApiRequest, absence_id: str) -> ApiResult:
    absence = row_id(absence_id, "you have no absence")
    try:
        approvals.cancel_away(request.api_user, absence)
    except WorkflowError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    from django.http import HttpResponse

    raise RawResponse(HttpResponse(status=204))
