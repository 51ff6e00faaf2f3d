"""Deciding approval requests: who may, recording each decision once, closing a request once.

The implementation behind ``workflows.approvals`` (import that module, not this one).

Who may decide a request (resolved at decision time, so a group change applies at once):
a user named by an approver entry (``user:``), a member of a named group (``group:``), a
holder of a named permission (``perm:``); with no entries, anyone holding
``workflows.approve_instance``. A superuser may decide any request, and the decision says
so. Nobody decides twice, and ``requested_by`` never decides their own request.

``decide`` runs in one transaction holding the request's row lock (PostgreSQL; SQLite
serialises writers): check, validate the form, insert the decision (unique per user), and
when the quorum is reached or someone rejects, close the request with a conditional UPDATE
and wake its instance. Concurrent deciders therefore never close a request twice or lose
a decision; the waiting step picks the outcome up on its next replay.
"""

from __future__ import annotations

import io
import pydoc
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from workflows import audit, clock, conf, metrics
from workflows.approval_stats import record_decision_time
from workflows.approvals import DecisionRefused, Image
from workflows.delegations import active_delegators
from workflows.errors import NotSerialisable, ValueTooLarge, WorkflowError
from workflows.models import ApprovalApprover, ApprovalDecision, ApprovalRequest, Instance, Notification
from workflows.states import DECIDED, FINISHED, ApprovalStatus, Status, StepKind, StepStatus
from workflows.timers import wake, woken
from workflows.values import decode, encode, encode_limited

COMMENT_MAX = 2000
CHANNELS = ("dashboard", "api", "cli", "python", "link")


@dataclass(frozen=True)
class Decision:
    """One person's decision, as the request shows it."""

    by: str
    approved: bool
    comment: str
    data: dict[str, Any]
    decided_at: datetime
    channel: str
    as_superuser: bool
    on_behalf_of: str = ""  # the away approver ``by`` decided for

    def as_payload(self) -> dict[str, Any]:
        return {
            "by": self.by, "approved": self.approved, "comment": self.comment, "data": self.data,
            "decided_at": self.decided_at, "on_behalf_of": self.on_behalf_of or None,
        }  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """A request's reminder, escalation and deadline policy, and how far it has gone."""

    remind_every: float | None  # seconds
    escalate_to: list[str] | None
    on_timeout: str  # error, approve or reject
    reminders_sent: int
    escalated_at: datetime | None
    next_nudge: datetime | None  # the next reminder or escalation

    def as_dict(self) -> dict[str, Any]:
        return {
            "remind_every": self.remind_every, "escalate_to": self.escalate_to, "on_timeout": self.on_timeout,
            "reminders_sent": self.reminders_sent, "escalated_at": self.escalated_at, "next_nudge": self.next_nudge,
        }  # fmt: skip


@dataclass(frozen=True)
class Notice:
    """One notification of the request: to whom, why, by which notifier, and what became of it."""

    kind: str  # opened, reminder, escalation
    slot: int
    recipient: str
    on_behalf_of: str
    notifier: str  # the notifier class's name
    status: str  # pending, sent, failed, skipped
    attempts: int
    problem: str  # the last error, or why it was skipped
    created_at: datetime
    sent_at: datetime | None


class Request:
    """An approval request as people see it: what it asks, who decided, whether it is open."""

    def __init__(self, row: ApprovalRequest, decisions: Iterable[ApprovalDecision]):
        self._row = row
        self.id: int = row.pk
        self.workflow = row.workflow_name
        self.instance_id = row.instance_key
        self.step = row.step_name
        self.count = row.occurrence
        self.title = row.title
        self.details: dict[str, Any] = decode(row.details) or {}
        self.approvers: list[str] | None = row.approvers
        self.quorum = row.quorum
        self.requested_by = row.requested_by
        self.status = row.status
        self.created_at = row.created_at
        self.closed_at = row.closed_at
        self.closed_by = row.closed_by
        self.deadline: datetime | None = row.step.wake_at if row.status == ApprovalStatus.OPEN else None
        self.form_path = row.form
        self.instance_status = row.instance.status
        self.step_status = row.step.status
        self.policy = Policy(
            row.remind_every, row.escalate_to, row.on_timeout, row.reminders_sent, row.escalated_at,
            row.nudge_at if row.status == ApprovalStatus.OPEN else None,
        )  # fmt: skip
        self.decisions = [
            Decision(
                d.username, d.approved, d.comment, decode(d.data) or {}, d.decided_at, d.channel, d.as_superuser,
                d.on_behalf_of,
            )
            for d in decisions
        ]  # fmt: skip

    def __repr__(self) -> str:
        return f"<approvals.Request {self.id} {self.workflow}/{self.instance_id} {self.step!r} {self.status}>"

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.approved)

    @property
    def is_open(self) -> bool:
        return self.status == ApprovalStatus.OPEN

    @property
    def images(self) -> list[tuple[str, Image]]:
        """(label, image) of each image in the details."""
        return [(label, value) for label, value in self.details.items() if isinstance(value, Image)]

    @property
    def form_class(self) -> type | None:
        """The form decisions fill in (None without one); WorkflowError if its code is gone."""
        if not self.form_path:
            return None
        found = pydoc.locate(self.form_path)
        if not isinstance(found, type):
            raise WorkflowError(f"the decision form {self.form_path} of approval {self.id} can no longer be imported")
        return found

    def is_approver(self, user: Any) -> bool:
        """Whether an approver entry names ``user`` (a superuser's right to decide anything aside)."""
        wanted = self._row.approver_rows.all()
        held = identities(user)
        return any((entry.kind, entry.value) in held for entry in wanted)

    def refusal(self, user: Any, now: datetime | None = None) -> DecisionRefused | None:
        """Why ``user`` may not decide this request now, or None when they may."""
        return self.decider(user, now)[1]

    def decider(self, user: Any, now: datetime | None = None) -> tuple[str, DecisionRefused | None]:
        """On whose behalf ``user`` would decide ("" for themselves, or an away approver's
        username), or why they may not decide at all."""
        now = now or clock.now()
        username = user.get_username() if getattr(user, "is_authenticated", False) else ""
        refused = self._closed_refusal() or self._waiting_refusal(now)
        if refused is not None:
            return "", refused
        if not username or not user.is_active:
            return "", DecisionRefused(f"approval {self.id}: only an active, logged-in user may decide", "not_approver")
        if self.requested_by and username == self.requested_by:
            return "", DecisionRefused(
                f"approval {self.id} is {username}'s own request: they may not decide it", "own_request"
            )
        for d in self.decisions:
            if username in (d.by, d.on_behalf_of):
                whose = f" (on {username}'s behalf by {d.by})" if d.on_behalf_of == username else ""
                message = f"approval {self.id}: {username} has already decided it{whose}"
                return "", DecisionRefused(message, "already_decided")
        if user.is_superuser or self.is_approver(user):
            return "", None
        for away in active_delegators(user, now):
            taken = {d.by for d in self.decisions} | {d.on_behalf_of for d in self.decisions}
            if away.get_username() not in taken and away.get_username() != self.requested_by and self.is_approver(away):
                return away.get_username(), None
        named = ", ".join(self.approvers or [f"perm:{APPROVE_PERMISSION}"])
        return "", DecisionRefused(f"approval {self.id}: {username} is not an approver ({named})", "not_approver")

    def _waiting_refusal(self, now: datetime) -> DecisionRefused | None:
        if self.instance_status in FINISHED or self.step_status != StepStatus.WAITING:
            return DecisionRefused(
                f"approval {self.id}: the instance is no longer waiting for it ({self.instance_status})", "not_waiting"
            )
        if self.deadline is not None and self.deadline <= now:
            return DecisionRefused(f"approval {self.id} timed out at {_when(self.deadline)}", "timed_out")
        return None

    def _closed_refusal(self) -> DecisionRefused | None:
        if self.status == ApprovalStatus.TIMED_OUT:
            return DecisionRefused(f"approval {self.id} timed out at {_when(self.closed_at)}", "timed_out")
        if self.status == ApprovalStatus.CANCELLED:
            return DecisionRefused(
                f"approval {self.id}: the instance is no longer waiting for it (terminated or restarted)", "not_waiting"
            )
        if self.status in DECIDED:
            return DecisionRefused(
                f"approval {self.id} is already closed: {self.status} by {self.closed_by} at {_when(self.closed_at)}",
                "closed",
            )
        return None

    def can_decide(self, user: Any) -> bool:
        return self.refusal(user) is None

    @property
    def notifications(self) -> list[Notice]:
        """Every notification sent (or tried) about this request, oldest first."""
        return [
            Notice(
                n.kind, n.slot, n.recipient, n.on_behalf_of, n.notifier.rsplit(".", 1)[-1], n.status, n.attempts,
                n.last_error, n.created_at, n.sent_at,
            )
            for n in Notification.objects.filter(request_id=self.id).order_by("created_at", "pk")
        ]  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Everything about the request, for the HTTP API and the CLI (values as stored)."""
        return {
            "id": self.id, "workflow": self.workflow, "instance_id": self.instance_id, "step": self.step,
            "count": self.count, "title": self.title, "details": self.details, "approvers": self.approvers,
            "quorum": self.quorum, "approvals": self.approvals, "requested_by": self.requested_by,
            "status": self.status, "created_at": self.created_at, "deadline": self.deadline,
            "closed_at": self.closed_at, "closed_by": self.closed_by or None,
            "policy": self.policy.as_dict(), "form": _form_fields(self), "decisions": [
                {**d.as_payload(), "channel": d.channel, "as_superuser": d.as_superuser} for d in self.decisions
            ],
            "notifications": [asdict(n) for n in self.notifications],
        }  # fmt: skip


APPROVE_PERMISSION = "workflows.approve_instance"


def _when(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "an unknown time"


def _form_fields(request: Request) -> list[dict[str, Any]] | None:
    try:
        form_class = request.form_class
    except WorkflowError:
        return None
    if form_class is None:
        return None
    form = form_class()
    return [
        {"name": name, "label": str(field.label or name), "required": field.required}
        for name, field in form.fields.items()
    ]


def identities(user: Any) -> set[tuple[str, str]]:
    """What approver entries can name ``user``: their username, groups and permissions."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    # Kept on the user object, as Django keeps its permissions (an inbox page asks once per
    # request listed); a user fetched again sees membership changes.
    cached = getattr(user, "_workflows_identities", None)
    if cached is not None:
        return cached
    held = {("user", user.get_username())}
    held |= {("group", name) for name in user.groups.values_list("name", flat=True)}
    held |= {("perm", permission) for permission in user.get_all_permissions()}
    user._workflows_identities = held
    return held


# --------------------------------------------------------------------------- reading


def _requests() -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.select_related("step", "instance").prefetch_related(
        "approver_rows", Prefetch("decision_rows", queryset=ApprovalDecision.objects.order_by("decided_at", "pk"))
    )


def _open_for(user: Any, workflow: str | None) -> QuerySet[ApprovalRequest]:
    """Open requests, or with ``user`` those they may decide now and have not (never their own)."""
    # Requests are closed when their instance finishes; the check per request (by primary
    # key) only guards that, where a join would have the planner scan every instance.
    finished = Instance.objects.filter(pk=OuterRef("instance_id"), status__in=FINISHED)
    # An open request's step waits (the kind is always an approval): saying so lets the
    # soonest deadlines come from the index of waiting steps, in order, and a page stop early.
    qs = ApprovalRequest.objects.filter(
        status=ApprovalStatus.OPEN, step__kind=StepKind.APPROVAL, step__status=StepStatus.WAITING
    ).exclude(Exists(finished))
    if workflow:
        qs = qs.filter(workflow_name=workflow)
    if user is None:
        return qs
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return qs.none()
    username = user.get_username()
    if not user.is_superuser:
        named = Q()
        for someone in [user, *active_delegators(user)]:  # an away colleague's requests too
            for kind, value in identities(someone):
                named |= Q(kind=kind, value=value)
        qs = qs.filter(Exists(ApprovalApprover.objects.filter(named, request=OuterRef("pk"))))
    already = ApprovalDecision.objects.filter(request=OuterRef("pk")).filter(
        Q(username=username) | Q(on_behalf_of=username)
    )
    return qs.exclude(requested_by=username).exclude(Exists(already)).filter(step__wake_at__gt=clock.now())


def _soonest_first(requests: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    return requests.order_by(F("step__wake_at").asc(nulls_last=True), "pk")


def _loaded(ids: list[int]) -> list[Request]:
    """The requests ``ids``, in that order, with what a card shows (none that closed meanwhile)."""
    rows = {row.pk: row for row in _requests().filter(pk__in=ids)}
    return [Request(rows[pk], rows[pk].decision_rows.all()) for pk in ids if pk in rows]


def pending(user: Any = None, workflow: str | None = None, limit: int | None = None) -> list[Request]:
    ordered = _soonest_first(_open_for(user, workflow))
    delegated = user is not None and bool(active_delegators(user))
    # Standing in for someone, the query is a superset (their requests, whoever decided what):
    # each one is checked exactly before it is shown.
    found = _loaded(list((ordered[:limit] if limit and not delegated else ordered).values_list("pk", flat=True)))
    if delegated:
        found = [r for r in found if r.can_decide(user)][:limit]
    return found


def pending_page(
    user: Any = None, workflow: str | None = None, limit: int = 50, count_up_to: int | None = None
) -> tuple[list[Request], int]:
    """The first ``limit`` of ``pending(user, workflow)`` and how many there are in all; with
    ``count_up_to``, counting stops past it (a total above it means "at least that many").
    The total is never below the page's length."""
    _check_cap("count_up_to", count_up_to)
    if user is not None and active_delegators(user):
        everything = pending(user, workflow)
        page = everything[:limit]
        return page, max(len(page), _at_most(len(everything), count_up_to))
    requests = _open_for(user, workflow)
    ids = list(_soonest_first(requests).values_list("pk", flat=True)[:limit])
    # A short page is the whole list; a full one is counted separately (the same requests,
    # at the same moment), so the page itself stops at its last row instead of visiting
    # every open request for a window count.
    total = len(ids) if len(ids) < limit else max(len(ids), _count(requests, count_up_to))
    return _loaded(ids), total


def count_pending(user: Any, up_to: int | None = None) -> int:
    """The number ``pending(user)`` lists (the badge and the list always agree); with
    ``up_to``, counting stops past it (``up_to + 1`` means "more")."""
    _check_cap("up_to", up_to)
    if active_delegators(user):
        return _at_most(len(pending(user)), up_to)
    return _count(_open_for(user, None), up_to)


def _count(requests: QuerySet[ApprovalRequest], up_to: int | None) -> int:
    # COUNT over a LIMITed subquery: the work is bounded by the cap, not by the open requests.
    return (requests if up_to is None else requests[: up_to + 1]).count()


def _check_cap(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise WorkflowError(f"{name} must be a whole number of requests, 0 or more (None counts all), not {value!r}")


def _at_most(total: int, up_to: int | None) -> int:
    return total if up_to is None else min(total, up_to + 1)


def get(request_id: int) -> Request:
    row = _requests().filter(pk=_request_pk(request_id)).first()
    if row is None:
        raise DecisionRefused(f"there is no approval request {request_id!r}", "not_found")
    return Request(row, row.decision_rows.all())


def _request_pk(request_id: Any) -> int:
    if (
        isinstance(request_id, bool)
        or not isinstance(request_id, (int, str))
        or not str(request_id).isascii()
        or not str(request_id).isdigit()
    ):
        raise DecisionRefused(f"there is no approval request {request_id!r} (ids are whole numbers)", "not_found")
    pk = int(request_id)
    if pk > 2**62:
        raise DecisionRefused(f"there is no approval request {request_id!r}", "not_found")
    return pk


def decided(
    *,
    decider: Any = None,
    workflow: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> list[Request]:
    if outcome is not None and outcome not in ApprovalStatus.values:
        raise WorkflowError(f"invalid outcome {outcome!r}; one of {', '.join(ApprovalStatus.values)}")
    qs = _requests().exclude(status=ApprovalStatus.OPEN)
    if decider is not None:
        qs = qs.filter(Exists(ApprovalDecision.objects.filter(request=OuterRef("pk"), username=decider.get_username())))
    if workflow:
        qs = qs.filter(workflow_name=workflow)
    if outcome:
        qs = qs.filter(status=outcome)
    if since:
        qs = qs.filter(closed_at__gte=since)
    if until:
        qs = qs.filter(closed_at__lt=until)
    return [Request(row, row.decision_rows.all()) for row in qs.order_by("-closed_at", "-pk")[:limit]]


# --------------------------------------------------------------------------- deciding


def decide(
    request_id: int,
    *,
    user: Any,
    approved: bool,
    comment: str = "",
    data: dict[str, Any] | None = None,
    channel: str = "python",
) -> Request:
    if not isinstance(approved, bool):
        raise WorkflowError(f"approved must be True or False, got {approved!r:.40}")
    if channel not in CHANNELS:
        raise WorkflowError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r:.40}")
    comment = (comment or "").strip() if isinstance(comment, str) else comment
    if not isinstance(comment, str) or len(comment) > COMMENT_MAX:
        raise DecisionRefused(f"the comment must be text of at most {COMMENT_MAX} characters", "invalid_data")
    pk = _request_pk(request_id)
    now = clock.now()
    with transaction.atomic():
        row = _requests().select_for_update(of=("self",)).filter(pk=pk).first()
        if row is None:
            raise DecisionRefused(f"there is no approval request {request_id!r}", "not_found")
        request = Request(row, row.decision_rows.all())
        refused = request.refusal(user, now)
        if refused is not None:
            raise refused
        on_behalf_of = request.decider(user, now)[0]
        cleaned = _validated_data(request, approved, data)
        _record(row, request, user, approved, comment, cleaned, channel, now, on_behalf_of)
        audit.record(
            "decide", workflow=row.workflow_name, instance_id=row.instance_key, user=user, channel=channel, at=now,
            details={
                "request": pk, "step": row.step_name, "approved": approved,
                **({"on_behalf_of": on_behalf_of} if on_behalf_of else {}), **({"comment": comment} if comment else {}),
            },
        )  # fmt: skip
        decisions = list(ApprovalDecision.objects.filter(request=row).order_by("decided_at", "pk"))
        if not approved:
            _close(row, ApprovalStatus.REJECTED, decisions, now)
        elif sum(d.approved for d in decisions) >= row.quorum:
            _close(row, ApprovalStatus.APPROVED, decisions, now)
    return get(pk)


def _validated_data(request: Request, approved: bool, data: Any) -> dict[str, Any]:
    """The form's cleaned data (approvals must validate; rejections only if the form says so)."""
    form_class = request.form_class
    if data is not None and not isinstance(data, dict):
        raise DecisionRefused("data must be an object of form fields", "invalid_data")
    if form_class is None:
        if data:
            raise DecisionRefused(f"approval {request.id} has no form: send no data", "invalid_data")
        return {}
    form = form_class(data=data or {})
    valid = form.is_valid()
    if not valid and (approved or getattr(form_class, "validate_on_reject", False)):
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in form.errors.items())
        raise DecisionRefused(
            f"approval {request.id}: the form is not valid ({problems})", "invalid_data", form.errors.get_json_data()
        )
    cleaned = dict(form.cleaned_data) if valid else {}
    try:
        encode_limited(cleaned, what="the form's data", limit=conf.get("MAX_VALUE_BYTES"))
    except (NotSerialisable, ValueTooLarge) as exc:
        raise DecisionRefused(
            f"approval {request.id}: the form's data cannot be stored: {exc}", "invalid_data"
        ) from None
    return cleaned


def _record(
    row: ApprovalRequest,
    request: Request,
    user: Any,
    approved: bool,
    comment: str,
    data: dict,
    channel: str,
    now: datetime,
    on_behalf_of: str,
) -> None:
    try:
        with transaction.atomic():
            ApprovalDecision.objects.create(
                request=row, user=user, username=user.get_username(), approved=approved, comment=comment,
                data=encode(data), decided_at=now, channel=channel, on_behalf_of=on_behalf_of,
                as_superuser=user.is_superuser and not on_behalf_of and not request.is_approver(user),
            )  # fmt: skip
    except IntegrityError:
        raise DecisionRefused(
            f"approval {request.id}: {user.get_username()} has already decided it", "already_decided"
        ) from None


def _close(row: ApprovalRequest, outcome: str, decisions: list[ApprovalDecision], now: datetime) -> None:
    """Close the request with the decision that closed it, and wake its instance (once)."""
    last = decisions[-1]
    payload = {
        "approved": outcome == ApprovalStatus.APPROVED,
        "by": last.username,
        "on_behalf_of": last.on_behalf_of or None,
        "comment": last.comment,
        "decided_at": last.decided_at,
        "data": decode(last.data) or {},
        "decisions": [decision_payload(d) for d in decisions],
    }
    close_request(row, outcome, last.username, payload, now)
    wake_instance(row.instance_id, now)


def decision_payload(d: ApprovalDecision) -> dict[str, Any]:
    return {
        "by": d.username, "on_behalf_of": d.on_behalf_of or None, "approved": d.approved, "comment": d.comment,
        "data": decode(d.data) or {}, "decided_at": d.decided_at,
    }  # fmt: skip


def close_request(row: ApprovalRequest, outcome: str, closed_by: str, payload: dict[str, Any], now: datetime) -> None:
    """Close an open request with the payload its step receives, once, and count how long it took."""
    seconds = max(0.0, (now - row.created_at).total_seconds())
    closed = ApprovalRequest.objects.filter(pk=row.pk, status=ApprovalStatus.OPEN).update(
        status=outcome, closed_at=now, closed_by=closed_by, result=encode(payload), decision_seconds=seconds,
        nudge_at=None,
    )  # fmt: skip
    if not closed:  # cannot happen under the row lock; never deliver twice if it did
        raise DecisionRefused(f"approval {row.pk} was closed meanwhile", "closed")
    metrics.observe("workflows_approval_decision_seconds", seconds, workflow=row.workflow_name, outcome=outcome)
    record_decision_time(row.workflow_name, now, seconds)


def wake_instance(instance_pk: int, now: datetime) -> None:
    """Let the waiting step see the outcome: a parked instance is queued; a running one replays."""
    instance = Instance.objects.select_for_update().get(pk=instance_pk)
    changes: dict[str, Any] = {"events_version": F("events_version") + 1, "updated_at": now}
    if instance.status == Status.WAITING:
        changes.update(woken(now))
    Instance.objects.filter(pk=instance_pk).update(**changes)
    if instance.status == Status.WAITING:
        wake(instance_pk)


# --------------------------------------------------------------------------- images


THUMBNAIL_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}


def image_thumbnail(request_id: int, bucket_key: str, size: int = 480) -> tuple[bytes, str]:
    request = get(request_id)
    if bucket_key not in {image.bucket_key for _, image in request.images}:
        raise DecisionRefused(f"approval {request.id} shows no image {bucket_key!r}", "not_found")
    from PIL import Image as Picture
    from PIL import UnidentifiedImageError

    from workflows.bindings import env

    try:
        stored = env.BUCKET.get(bucket_key)
        if stored is None:
            raise DecisionRefused(f"the image {bucket_key!r} is no longer in the bucket", "not_found")
        with Picture.open(io.BytesIO(stored.read())) as picture:
            if picture.format not in THUMBNAIL_FORMATS:
                raise DecisionRefused(f"{bucket_key!r} is a {picture.format} file, not an image to show", "not_found")
            picture.thumbnail((size, size))
            out = io.BytesIO()
            picture.convert("RGB").save(out, format="PNG")
    except (UnidentifiedImageError, OSError):
        raise DecisionRefused(f"{bucket_key!r} is not an image", "not_found") from None
    return out.getvalue(), "image/png"
