"""API errors: JSON ``{"error": {"code", "message"}}`` with a stable code and the right status."""

from __future__ import annotations

from django.http import JsonResponse

import workflows as wf


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JsonResponse:
        return JsonResponse({"error": {"code": self.code, "message": self.message}}, status=self.status)


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
