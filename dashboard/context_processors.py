"""What every dashboard page knows: the inbox badge, and the closed sets templates compare with."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from workflows import ACTIVE, FINISHED, Status, StepStatus


def dashboard(request: HttpRequest) -> dict[str, Any]:
    names: dict[str, Any] = {"Status": Status, "StepStatus": StepStatus, "FINISHED": FINISHED, "ACTIVE": ACTIVE}
    if getattr(request, "user", None) is None or not request.user.is_authenticated:
        return names
    from dashboard import inbox_count
    from dashboard.models import SavedView

    views = list(SavedView.objects.filter(user=request.user).values("id", "name", "query"))
    # The inbox page has just counted the same requests; other pages count them here.
    count = getattr(request, "workflows_inbox_count", None)
    if count is None:
        count = inbox_count.pending_count(request.user)
    return {**names, "inbox_count": count, "inbox_count_text": inbox_count.badge_text(count), "saved_views": views}
