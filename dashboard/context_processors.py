"""The approval inbox badge in the navigation (one count query per page)."""


def inbox_badge(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    from dashboard.models import NonApprovalEventType
    from workflows.queries import count_pending_waits

    excluded = NonApprovalEventType.objects.values_list("event_type", flat=True)
    return {"inbox_count": count_pending_waits(exclude_types=list(excluded))}
