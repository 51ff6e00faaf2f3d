"""Delegation: while someone is away, a colleague decides their approval requests for them.

"Away from D1 to D2, delegate to X": in that window X sees the user's requests in their own
inbox, may decide them (each decision says "X on behalf of Y"), and receives the
notifications meant for the user. It never lets anyone decide their own request, decide
twice, or decide a request both for themselves and on someone's behalf.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet

from workflows import audit, clock
from workflows.errors import WorkflowError
from workflows.models import Delegation

MAX_WINDOW = timedelta(days=366)


def active_delegators(user: Any, now: datetime | None = None) -> list[Any]:
    """The users who are away now and delegated to ``user``."""
    if not getattr(user, "is_authenticated", False):
        return []
    now = now or clock.now()
    ids = Delegation.objects.filter(delegate=user, starts__lte=now, ends__gt=now).values_list("user_id", flat=True)
    return list(get_user_model().objects.filter(pk__in=list(ids), is_active=True))


def stand_in(user: Any, now: datetime | None = None) -> Any | None:
    """Who decides for ``user`` now (their delegate while they are away), or None."""
    now = now or clock.now()
    found = (
        Delegation.objects.filter(user=user, starts__lte=now, ends__gt=now, delegate__is_active=True)
        .select_related("delegate")
        .order_by("-starts")
        .first()
    )
    return found.delegate if found else None


def set_away(user: Any, *, delegate: Any, starts: datetime, ends: datetime, note: str = "") -> Delegation:
    """Record that ``user`` is away from ``starts`` to ``ends`` and ``delegate`` decides for them."""
    if delegate is None or not delegate.is_active:
        raise WorkflowError("the delegate must be an active user")
    if delegate.pk == user.pk:
        raise WorkflowError("you cannot delegate to yourself")
    if starts.tzinfo is None or ends.tzinfo is None:
        raise WorkflowError("the start and end of an absence need a time zone")
    if ends <= starts:
        raise WorkflowError(f"the absence must end after it starts ({starts:%Y-%m-%d %H:%M} → {ends:%Y-%m-%d %H:%M})")
    if ends - starts > MAX_WINDOW:
        raise WorkflowError(f"an absence can last at most {MAX_WINDOW.days} days")
    if ends <= clock.now():
        raise WorkflowError("that absence is already over")
    if len(note) > 200:
        raise WorkflowError("the note can be at most 200 characters")
    if Delegation.objects.filter(user=user, starts__lt=ends, ends__gt=starts).exists():
        raise WorkflowError("you already have an absence in that period; cancel it first")
    if Delegation.objects.filter(user=delegate, starts__lt=ends, ends__gt=starts).exists():
        raise WorkflowError(f"{delegate.get_username()} is away themselves in that period")
    with transaction.atomic():
        audit.record(
            "set_away", user=user, details={"delegate": delegate.get_username(), "starts": starts.isoformat(),
                                            "ends": ends.isoformat()},
        )  # fmt: skip
        return Delegation.objects.create(
            user=user, delegate=delegate, starts=starts, ends=ends, note=note, created_at=clock.now()
        )


def absences(user: Any) -> QuerySet[Delegation]:
    """``user``'s absences that have not ended, soonest first."""
    return Delegation.objects.filter(user=user, ends__gt=clock.now()).select_related("delegate").order_by("starts")


def standing_in_for(user: Any) -> QuerySet[Delegation]:
    """The absences in which ``user`` is the delegate, not ended yet."""
    return Delegation.objects.filter(delegate=user, ends__gt=clock.now()).select_related("user").order_by("starts")


def cancel_away(user: Any, delegation_id: int) -> None:
    with transaction.atomic():
        deleted, _ = Delegation.objects.filter(user=user, pk=delegation_id).delete()
        if not deleted:
            raise WorkflowError(f"you have no absence {delegation_id!r}")
        audit.record("cancel_away", user=user, details={"absence": delegation_id})
