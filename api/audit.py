"""``GET /api/audit``: the audit log, oldest first, for operators (export it page by page with ``after``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.errors import ApiError
from api.http import ApiResult, datetime_param, endpoint, int_param
from workflows import Permission, audit_log

if TYPE_CHECKING:
    from api.http import ApiRequest


@endpoint(GET=(Permission.OPERATE,))
def audit_list(request: ApiRequest) -> ApiResult:
    limit = int_param(request, "limit", 100)
    after = int_param(request, "after", 0)
    if not 1 <= limit <= 1000:
        raise ApiError(400, "invalid_request", f"limit must be 1 to 1000, got {limit}")
    if not 0 <= after <= 2**62:
        raise ApiError(400, "invalid_request", f"after must be a record id (0 or more), got {after}")
    records = audit_log(
        workflow=request.GET.get("workflow") or None, instance_id=request.GET.get("instance_id") or None,
        actor=request.GET.get("actor") or None, since=datetime_param(request, "since"),
        until=datetime_param(request, "until"), after_id=after, limit=limit,
    )  # fmt: skip
    return 200, {"records": records, "next_after": records[-1]["id"] if len(records) == limit else None}
