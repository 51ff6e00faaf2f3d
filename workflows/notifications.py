"""Telling approvers: the opening notice, reminders and escalation of approval requests.

Each open request carries its own engine timer, ``nudge_at``: due at once when the request
opens (its opening notices), then at the next reminder or the escalation, whichever comes
first, and NULL when nothing is left. The dispatcher of every worker runs what has come
due (``run_due``) under the request's row lock, re-checking ``nudge_at``, so each slot
fires once however many workers there are and whatever crashes in between. A slot writes
one ``Notification`` per recipient and notifier (unique, so never twice) in the same
transaction: the outbox. Sending happens outside it, in a django-q2 task per notification
(``deliver``), retried with backoff; the dispatcher kicks a task again if one is lost.

Reminders and escalations stop the moment the request closes (closing clears ``nudge_at``,
and a delivery re-checks the request first) and pause with the instance (a paused instance's
timer is parked; ``resume`` moves it on by the paused time and restores it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission as AuthPermission
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils.module_loading import import_string

from workflows import clock, conf, metrics
from workflows.delegations import stand_in
from workflows.models import ApprovalDecision, ApprovalRequest, Instance, Notification
from workflows.states import FINISHED, ApprovalStatus, NotificationKind, NotificationStatus, Status
from workflows.timers import earliest, grace, kick_delivery

log = logging.getLogger("workflows.notifications")

MAX_RECIPIENTS = 500  # per slot; a bigger audience is a mailing list, not an approver list


@dataclass(frozen=True)
class Recipient:
    user: Any
    on_behalf_of: str = ""  # the away approver this delegate is told for


# --------------------------------------------------------------------------- timers


def run_due(now: datetime | None = None, limit: int = 100) -> int:
    """Fire the reminders and escalations that have come due and (re)start due deliveries.

    Returns how much it did, so the dispatcher loops while there is more.
    """
    now = now or clock.now()
    done = 0
    due = ApprovalRequest.objects.filter(nudge_at__lte=now).order_by("nudge_at").values_list("pk", flat=True)
    for pk in list(due[:limit]):
        done += nudge(pk, now)
    return done + _restart_deliveries(now, limit)


def next_due() -> datetime | None:
    """The earliest nudge or delivery timer (for the test clock)."""
    return earliest(due_timers())


def due_timers() -> list[QuerySet]:
    """The nudge and delivery timers, as ``timers.earliest`` takes them (the dispatcher's sleep)."""
    return [
        ApprovalRequest.objects.filter(nudge_at__isnull=False).order_by("nudge_at").values("nudge_at")[:1],
        Notification.objects.filter(due_at__isnull=False).order_by("due_at").values("due_at")[:1],
    ]


def nudge(request_pk: int, now: datetime | None = None) -> int:
    """Run what is due on one request (once: under its row lock, with ``nudge_at`` re-checked)."""
    now = now or clock.now()
    with transaction.atomic():
        rows = ApprovalRequest.objects.select_for_update(**_skip_locked()).filter(pk=request_pk, nudge_at__lte=now)
        request = rows.select_related("step").first()
        if request is None:
            return 0  # another dispatcher has it, or it is no longer due
        instance_status = Instance.objects.filter(pk=request.instance_id).values_list("status", flat=True).first()
        if request.status != ApprovalStatus.OPEN or instance_status in FINISHED:
            ApprovalRequest.objects.filter(pk=request_pk).update(nudge_at=None)
            return 1
        if instance_status == Status.PAUSED:  # parked; resume_timers restores it
            ApprovalRequest.objects.filter(pk=request_pk).update(nudge_at=None)
            return 1
        queued = _fire(request, now)
        ApprovalRequest.objects.filter(pk=request_pk).update(
            nudge_at=next_nudge(request), notified_at=request.notified_at, reminders_sent=request.reminders_sent,
            next_reminder_at=request.next_reminder_at, escalate_at=request.escalate_at,
            escalated_at=request.escalated_at,
        )  # fmt: skip
        transaction.on_commit(lambda: _kick_all(queued))
    return 1


def _skip_locked() -> dict[str, Any]:
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}


def _fire(request: ApprovalRequest, now: datetime) -> list[int]:
    """Queue what is due (the opening notice, the escalation, a reminder), moving the request on."""
    queued: list[int] = []
    told: set[str] = set()
    if request.notified_at is None:
        request.notified_at = now
        told |= _queue(request, NotificationKind.OPENED, 0, _recipients(request), now, queued)
    if request.escalate_at is not None and request.escalate_at <= now:
        from workflows.engine.approvals import add_approvers

        entries = request.escalate_to or []
        add_approvers(request, entries, escalated=True)
        request.escalate_at, request.escalated_at = None, now
        metrics.increment("workflows_approval_escalations", workflow=request.workflow_name)
        told |= _queue(request, NotificationKind.ESCALATION, 0, _recipients(request, entries), now, queued)
    if request.next_reminder_at is not None and request.next_reminder_at <= now:
        request.reminders_sent += 1
        request.next_reminder_at = _next_reminder(request, now)
        others = [r for r in _recipients(request) if r.user.get_username() not in told]
        _queue(request, NotificationKind.REMINDER, request.reminders_sent, others, now, queued)
        metrics.increment("workflows_approval_reminders", workflow=request.workflow_name)
    return queued


def _next_reminder(request: ApprovalRequest, now: datetime) -> datetime | None:
    """The first reminder slot after ``now`` (slots missed while nobody ran are not sent late
    one by one), or None when it would come at or after the deadline."""
    assert request.next_reminder_at is not None and request.remind_every
    every = timedelta(seconds=request.remind_every)
    missed = int((now - request.next_reminder_at) / every) + 1
    upcoming = request.next_reminder_at + missed * every
    deadline = request.step.wake_at
    return upcoming if deadline is None or upcoming < deadline else None


def next_nudge(request: ApprovalRequest) -> datetime | None:
    timers = [when for when in (request.next_reminder_at, request.escalate_at) if when is not None]
    return min(timers) if timers else None


def resume_timers(instance_pk: int, now: datetime) -> None:
    """Restore the parked timers of a resumed instance's open requests (after ``shift_timers``)."""
    for request in ApprovalRequest.objects.filter(instance_id=instance_pk, status=ApprovalStatus.OPEN):
        when = now if request.notified_at is None else next_nudge(request)
        ApprovalRequest.objects.filter(pk=request.pk).update(nudge_at=when)


# --------------------------------------------------------------------------- recipients


def _recipients(request: ApprovalRequest, entries: list[str] | None = None) -> list[Recipient]:
    """Who is told: each active user an approver entry names (or only ``entries``), never the
    requester nor anyone who has decided; an away approver's delegate instead of them."""
    pairs = entries if entries is not None else [f"{a.kind}:{a.value}" for a in request.approver_rows.all()]
    users = _users_named(pairs)
    done = set()
    for by, for_whom in ApprovalDecision.objects.filter(request=request).values_list("username", "on_behalf_of"):
        done |= {by, for_whom}
    found: dict[str, Recipient] = {}
    for user in users:
        name = user.get_username()
        if name in done or name == request.requested_by:
            continue
        delegate = stand_in(user)
        if delegate is None:
            found[name] = Recipient(user)
            continue
        if delegate.get_username() not in done and delegate.get_username() != request.requested_by:
            found.setdefault(delegate.get_username(), Recipient(delegate, on_behalf_of=name))
    if len(found) > MAX_RECIPIENTS:
        log.warning("approval %s names %s people; notifying the first %s", request.pk, len(found), MAX_RECIPIENTS)
    return sorted(found.values(), key=lambda r: r.user.get_username())[:MAX_RECIPIENTS]


def _users_named(entries: list[str]) -> list[Any]:
    named = Q(pk__in=[])
    for entry in entries:
        kind, _, value = entry.partition(":")
        if kind == "user":
            named |= Q(username=value)
        elif kind == "group":
            named |= Q(groups__name=value)
        elif kind == "perm":
            app_label, _, codename = value.partition(".")
            granted = AuthPermission.objects.filter(content_type__app_label=app_label, codename=codename)
            named |= Q(user_permissions__in=granted) | Q(groups__permissions__in=granted)
    return list(get_user_model().objects.filter(named, is_active=True).distinct().order_by("pk")[: MAX_RECIPIENTS * 2])


def _queue(
    request: ApprovalRequest, kind: str, slot: int, recipients: list[Recipient], now: datetime, queued: list[int]
) -> set[str]:
    """Write the slot's notifications (one per recipient and notifier; never twice)."""
    rows = [
        Notification(
            request=request,
            kind=kind,
            slot=slot,
            recipient=r.user.get_username(),
            notifier=path,
            on_behalf_of=r.on_behalf_of,
            created_at=now,
            next_attempt_at=now,
            due_at=now + grace(),
        )  # fmt: skip
        for r in recipients
        for path in notifier_paths()
    ]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    queued += Notification.objects.filter(
        request=request, kind=kind, slot=slot, status=NotificationStatus.PENDING, attempts=0
    ).values_list("pk", flat=True)
    return {r.user.get_username() for r in recipients}


def notifier_paths() -> list[str]:
    return list(conf.get("APPROVAL_NOTIFIERS"))


# --------------------------------------------------------------------------- delivery


def _kick_all(pks: list[int]) -> None:
    if not conf.get("ENQUEUE"):
        return  # in-process tests deliver from run_due
    for pk in pks:
        kick_delivery(pk)


def _restart_deliveries(now: datetime, limit: int) -> int:
    """Deliveries whose task was lost (or whose retry has come): send them again.

    With ``ENQUEUE`` off (in-process tests) they are delivered here, in this process.
    """
    if not conf.get("ENQUEUE"):
        ready = Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
        pks = list(ready.order_by("pk").values_list("pk", flat=True)[:limit])
        for pk in pks:
            deliver(pk, now)
        return len(pks)
    due = Notification.objects.filter(due_at__lte=now).order_by("due_at").values_list("pk", flat=True)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        pks = list(due[:limit])
        Notification.objects.filter(pk__in=pks).update(due_at=now + grace())
        transaction.on_commit(lambda: _kick_all(pks))
    return len(pks)


def deliver(notification_pk: int, now: datetime | None = None) -> str:
    """Send one notification (one attempt); returns its status afterwards.

    The attempt is claimed first (a compare-and-set on ``next_attempt_at``), so two tasks
    for the same notification never both send. A failure is logged and retried with
    backoff; after the last attempt it is marked failed, counted and shown on the timeline.
    It never touches the workflow.
    """
    from workflows.notifiers import NothingToSend, notice_for

    now = now or clock.now()
    lease = timedelta(seconds=conf.get("NOTIFY_TIMEOUT_SECONDS") * 3)
    claimed = Notification.objects.filter(
        pk=notification_pk, status=NotificationStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + lease, due_at=now + lease + grace(), attempts=F("attempts") + 1)
    if not claimed:
        return ""
    row = Notification.objects.select_related("request").get(pk=notification_pk)
    try:
        notice = notice_for(row, now)
        import_string(row.notifier)().send(notice)
    except NothingToSend as skipped:
        return _finish(row, NotificationStatus.SKIPPED, str(skipped), now)
    except Exception as exc:  # noqa: BLE001 - any notifier failure is the notifier's, never the workflow's
        return _failed(row, exc, now)
    return _finish(row, NotificationStatus.SENT, "", now)


def _finish(row: Notification, status: str, note: str, now: datetime) -> str:
    Notification.objects.filter(pk=row.pk).update(
        status=status, last_error=note[:2000], sent_at=now if status == NotificationStatus.SENT else None,
        next_attempt_at=None, due_at=None,
    )  # fmt: skip
    return status


def _failed(row: Notification, exc: Exception, now: datetime) -> str:
    attempt = row.attempts
    problem = f"{type(exc).__name__}: {exc}"[:2000]
    if attempt >= conf.get("NOTIFY_ATTEMPTS"):
        log.error(
            "notification %s (%s for approval %s to %s by %s) failed for good after %s attempts: %s",
            row.pk, row.kind, row.request_id, row.recipient, row.notifier, attempt, problem,
        )  # fmt: skip
        metrics.increment("workflows_notifications_failed", notifier=row.notifier)
        return _finish(row, NotificationStatus.FAILED, problem, now)
    retry_at = now + timedelta(seconds=conf.get("NOTIFY_RETRY_SECONDS") * 2 ** (attempt - 1))
    log.warning(
        "notification %s (%s for approval %s to %s by %s) failed (attempt %s), retrying at %s: %s",
        row.pk, row.kind, row.request_id, row.recipient, row.notifier, attempt, retry_at.isoformat(), problem,
    )  # fmt: skip
    Notification.objects.filter(pk=row.pk).update(last_error=problem, next_attempt_at=retry_at, due_at=retry_at)
    return NotificationStatus.PENDING
