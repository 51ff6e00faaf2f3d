"""The audit log: every mutation through the public API, with its real actor and channel.

Callers say who acts and through what once, around their work::

    with workflows.acting(request.user, "dashboard"):
        handle.pause()

and every change the public API makes inside (create, pause, resume, terminate, restart,
retry now, send an event, decide, delegate) writes one ``AuditRecord`` in the transaction
of the change. Without ``acting`` the record says channel "python" and no actor: your
own code, a schedule, a workflow creating its child. The dashboard, the HTTP API and the
CLI each set it for every request or command, so nothing they change goes unrecorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows import clock
from workflows.actors import Actor, current
from workflows.errors import WorkflowError
from workflows.models import AuditRecord


def record(action: str, **fields: Any) -> None:
    """Write one record (call it inside the transaction of the change); the arguments are
    ``unsaved``'s. ``user`` and ``channel`` override the current actor (a decision knows its own)."""
    unsaved(action, **fields).save()


def unsaved(
    action: str,
    *,
    workflow: str = "",
    instance_id: str = "",
    details: dict[str, Any] | None = None,
    user: Any = None,
    channel: str | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """The record ``record`` writes, not saved yet: for a caller that writes it in a
    statement of its own (``workflows.delivery``)."""
    actor = current()
    if user is not None:
        actor = Actor(user, channel or actor.channel, user.get_username())
    elif channel is not None:
        actor = Actor(actor.user, channel, actor.name)
    return AuditRecord(
        at=at or clock.now(), user=actor.user, actor=actor.name, channel=actor.channel, action=action,
        workflow_name=workflow, instance_key=instance_id, details={**current().context, **(details or {})},
    )  # fmt: skip


def record_many(action: str, workflow: str, instance_ids: list[str], details: dict[str, Any]) -> None:
    """One record per instance (a batch creation), in one statement."""
    actor = current()
    now = clock.now()
    AuditRecord.objects.bulk_create(
        [
            AuditRecord(
                at=now,
                user=actor.user,
                actor=actor.name,
                channel=actor.channel,
                action=action,
                workflow_name=workflow,
                instance_key=instance_id,
                details=details,
            )  # fmt: skip
            for instance_id in instance_ids
        ]
    )


def entries(
    *,
    workflow: str | None = None,
    instance_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Records oldest first: of one workflow or instance, by one actor, in [since, until),
    after the record ``after_id`` (to page through an export)."""
    if not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise WorkflowError(f"limit must be a whole number from 1 to 10000, got {limit!r:.40}")
    qs = AuditRecord.objects.all()
    if workflow:
        qs = qs.filter(workflow_name=workflow)
    if instance_id:
        qs = qs.filter(instance_key=instance_id)
    if actor:
        qs = qs.filter(actor=actor)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    if after_id:
        qs = qs.filter(pk__gt=after_id)
    return [
        {
            "id": r.pk,
            "at": r.at,
            "actor": r.actor or None,
            "channel": r.channel,
            "action": r.action,
            "workflow": r.workflow_name or None,
            "instance_id": r.instance_key or None,
            "details": r.details,
        }  # fmt: skip
        for r in qs.order_by("pk")[:limit]
    ]
