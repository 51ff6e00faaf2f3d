"""Bulk jobs over HTTP: ``POST /api/bulk-jobs`` starts one over a filter, ``GET /api/bulk-jobs/{id}``
follows it (``?items=refused|done|skipped|all`` lists its items), ``DELETE`` cancels it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api.errors import ApiError, row_id
from api.http import ApiResult, body, endpoint, int_param, json_object, parse_datetime_text
from workflows import Permission, WorkflowError, bulk_jobs

if TYPE_CHECKING:
    from api.http import ApiRequest

FILTER_FIELDS = {
    "workflow", "status", "statuses", "created_after", "created_before", "id_prefix", "attributes", "failed_step",
    "error_name", "version",
}  # fmt: skip


@endpoint(POST=(Permission.OPERATE,))
def bulk_job_list(request: ApiRequest) -> ApiResult:
    data = json_object(body(request), {"action", "filter", "output", "note"}, "the body")
    if not isinstance(data.get("action"), str):
        raise ApiError(400, "invalid_request", f"action must be one of {', '.join(bulk_jobs.ACTIONS)}")
    chosen: dict[str, Any] = dict(json_object(data.get("filter", {}), FILTER_FIELDS, "the filter"))
    for key in ("created_after", "created_before"):
        if chosen.get(key) is not None:
            chosen[key] = parse_datetime_text(chosen[key], key)
    note = data.get("note", "")
    if not isinstance(note, str):
        raise ApiError(400, "invalid_request", "note must be a string")
    job = bulk_jobs.start(data["action"], chosen, output=data.get("output"), note=note)
    return 202, job.as_dict()


@endpoint(GET=None, DELETE=(Permission.OPERATE,))
def bulk_job_detail(request: ApiRequest, job_id: str) -> ApiResult:
    job_pk = row_id(job_id, "there is no bulk job")
    try:
        found = bulk_jobs.get(job_pk)
    except WorkflowError:
        raise ApiError(404, "not_found", f"there is no bulk job {job_id}") from None
    if request.method == "DELETE":
        return 200, bulk_jobs.cancel(found.id).as_dict()
    job = found.as_dict()
    which = request.GET.get("items", "refused")
    if which not in ("refused", "done", "skipped", "pending", "all", "none"):
        raise ApiError(400, "invalid_request", "items must be refused, done, skipped, pending, all or none")
    if which != "none":
        after = int_param(request, "after", 0)
        job["items"] = bulk_jobs.items(job_pk, None if which == "all" else which, after=max(after, 0))
    return 200, job
