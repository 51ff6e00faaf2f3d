"""Approve or reject a waiting instance: recorded once, sent once, or refused with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from dashboard.models import AuditEntry, Decision
from workflows import FINISHED, StepStatus, WorkflowError, get_workflow, now

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class DecisionRefused(Exception):
    """The decision was not recorded and nothing was sent; the message says why."""


def _waiting_step(handle: Any, step: str, count: int) -> dict:
    """The wait a decision answers, or DecisionRefused saying why it no longer waits."""
    story = handle.describe()
    if story["status"] in FINISHED:
        raise DecisionRefused(
            f"This instance is {story['status']}: it is no longer waiting for a decision; nothing was sent."
        )
    wait = next(
        (s for s in story["steps"] if s["kind"] == "wait_for_event" and s["name"] == step and s["count"] == count),
        None,
    )
    if wait is None or wait["status"] != StepStatus.WAITING:
        raise DecisionRefused("This instance is no longer waiting for that decision; nothing was sent.")
    if wait["timeout_at"] and wait["timeout_at"] <= now():
        raise DecisionRefused(
            f"The wait timed out at {timezone.localtime(wait['timeout_at']):%Y-%m-%d %H:%M:%S}; nothing was sent."
        )
    return wait


def _already_decided(workflow: str, instance_id: str, step: str, count: int) -> DecisionRefused:
    """The refusal when that wait already has a decision: who decided it, and when."""
    earlier = Decision.objects.select_related("user").get(
        workflow=workflow, instance_id=instance_id, step=step, count=count
    )
    when = timezone.localtime(earlier.decided_at).strftime("%Y-%m-%d %H:%M:%S")
    return DecisionRefused(
        f"Already {earlier.verdict} by {earlier.user or 'someone'} at {when}; nothing was sent again."
    )


def decide(
    user: User, workflow: str, instance_id: str, step: str, count: int, approved: bool, comment: str = ""
) -> Decision:
    """Send ``{"approved", "by", "comment", "decided_at"}`` to the waiting step, exactly once.

    Refused (nothing sent) when someone already decided, when the wait has timed out, or
    when the instance no longer waits there.
    """
    comment = (comment or "").strip()[:2000]
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    decision = Decision.objects.create(
                        workflow=workflow,
                        instance_id=instance_id,
                        step=step,
                        count=count,
                        approved=approved,
                        comment=comment,
                        user=user,
                    )
            except IntegrityError:
                raise _already_decided(workflow, instance_id, step, count) from None
            handle = get_workflow(workflow).get(instance_id)
            wait = _waiting_step(handle, step, count)
            handle.send_event(
                wait["event_type"],
                {
                    "approved": approved,
                    "by": user.get_username(),
                    "comment": comment,
                    "decided_at": decision.decided_at.isoformat(),
                },
            )
            AuditEntry.objects.create(
                workflow=workflow,
                instance_id=instance_id,
                user=user,
                action="approve" if approved else "reject",
                details={"step": step, "count": count, "comment": comment},
            )
            return decision
    except WorkflowError as exc:
        raise DecisionRefused(f"Nothing was sent: {exc}") from None
