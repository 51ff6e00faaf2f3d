"""What every dashboard page knows: the inbox badge, and the closed sets templates compare with."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from workflows import ACTIVE, FINISHED, Status, StepStatus


def dashboard(request: HttpRequest) -> dict[str, Any]:
    names: dict[str, Any] = {"Status": Status, "StepStatus": StepStatus, "FINISHED": FINISHED, "ACTIVE": ACTIVE}
    if getattr(request, "user", None) is None or not request.user.is_authenticated:
        return names
    from workflows import approvals

    return {**names, "inbox_count": approvals.count_pending(request.user)}
