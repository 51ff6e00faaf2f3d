"""API errors: JSON ``{"error": {"code", "message"}}`` with a stable code and the right status."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

import workflows as wf
from workflows import approvals


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        response = JsonResponse({"error": error}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


# A refused decision: its reason is the code; the status says whose problem it is.
_REFUSALS = {
    "not_found": 404,
    "not_approver": 403,
    "own_request": 403,
    "already_decided": 409,
    "closed": 409,
    "timed_out": 409,
    "not_waiting": 409,
    "invalid_data": 422,
}


def from_refusal(exc: approvals.DecisionRefused) -> ApiError:
    fields = exc.errors if exc.reason == "invalid_data" else None
    return ApiError(_REFUSALS.get(exc.reason, 400), exc.reason, str(exc), fields)


# Most specific first: the first matching class decides.
_WORKFLOW_ERRORS = [
    (wf.WorkflowNotFound, 404, "workflow_not_found"),
    (wf.InstanceNotFound, 404, "instance_not_found"),
    (wf.DuplicateInstanceId, 409, "duplicate_id"),
    (wf.InvalidState, 409, "invalid_state"),
    (wf.ValueTooLarge, 413, "too_large"),
    (wf.InvalidInstanceId, 400, "invalid_id"),
    (wf.InvalidEventType, 400, "invalid_event_type"),
    (wf.NotSerialisable, 400, "invalid_value"),
    (wf.WorkflowError, 400, "invalid_request"),
]


def from_workflow_error(exc: wf.WorkflowError) -> ApiError:
    for cls, status, code in _WORKFLOW_ERRORS:
        if isinstance(exc, cls):
            return ApiError(status, code, str(exc))
    return ApiError(400, "invalid_request", str(exc))


def row_id(text: str, missing: str) -> int:
    """A numeric id from the URL, or 404 with ``missing`` ("there is no bulk job '…'").

    ASCII digits only: ``str.isdigit`` also accepts "³" and other digits ``int`` refuses.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(404, "not_found", f"{missing} {text!r}")
    return int(text)
