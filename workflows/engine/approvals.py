"""``step.wait_for_approval``: a durable wait that people decide through ``workflows.approvals``.

The first time the replay reaches it, one fenced transaction records the step (kind
``approval``, waiting, its deadline in ``wake_at``) and its ``ApprovalRequest`` with the
approvers split into ``ApprovalApprover`` rows. The branch then parks like any wait.
``workflows.decisions.decide`` closes the request (once) and wakes the instance; on the
next replay ``settle_request`` gives the step the decision as its result. A request still
open at its deadline times out: the step fails for good with ``WorkflowTimeoutError``, or,
with ``on_timeout="approve"`` or ``"reject"``, receives that decision (``by`` is "timeout").
Reminders, escalation and notifications are the request's own timer (``nudge_at``), run
by ``workflows.notifications``. Terminate and restart cancel open requests with their
steps (``workflows.history``).
"""

from __future__ import annotations

import pydoc
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.db import transaction

from workflows import clock, conf, metrics, tracing
from workflows.durations import MAX_SLEEP_SECONDS, parse_bounded
from workflows.engine.leases import Lease, fence
from workflows.engine.rows import StepKey, StepRow
from workflows.error_records import error_record, rebuild_error
from workflows.errors import NotSerialisable, ValueTooLarge, WorkflowFatalError, WorkflowTimeoutError
from workflows.models import ApprovalApprover, ApprovalRequest, Step
from workflows.states import APPROVER_KINDS, ApprovalStatus, Permission, StepKind, StepStatus, TimeoutPolicy
from workflows.validation import check_step_name
from workflows.values import decode, encode, encode_limited

if TYPE_CHECKING:
    from workflows.engine.replay import ReplayPass

TITLE_MAX = 500
MAX_REMINDERS = 1000


@dataclass(frozen=True)
class ApprovalSpec:
    """What ``wait_for_approval`` was asked for, validated when it is called."""

    approvers: tuple[str, ...] | None
    quorum: int
    requested_by: str | None
    form_path: str
    title: str | None
    details: Any
    timeout: float
    remind_every: float | None = None
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] | None = None
    on_timeout: str = TimeoutPolicy.ERROR


def build_spec(
    name: str,
    *,
    approvers: Any,
    quorum: Any,
    requested_by: Any,
    form: Any,
    title: Any,
    details: Any,
    timeout: Any,
    remind_every: Any = None,
    escalate_after: Any = None,
    escalate_to: Any = None,
    on_timeout: Any = TimeoutPolicy.ERROR,
) -> ApprovalSpec:
    """Check every argument, with a message naming the step, the argument and the rule."""

    def bad(problem: str) -> WorkflowFatalError:
        return WorkflowFatalError(f'wait_for_approval "{name}": {problem}')

    entries = None if approvers is None else _check_approvers("approvers", approvers, bad)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= 100:
        raise bad(f"quorum must be a whole number from 1 to 100, got {quorum!r}")
    if requested_by is not None and (not isinstance(requested_by, str) or not 0 < len(requested_by) <= 150):
        raise bad(f"requested_by must be a username (1 to 150 characters) or None, got {requested_by!r:.80}")
    if title is not None and (not isinstance(title, str) or len(title) > TITLE_MAX):
        raise bad(f"title must be a string of at most {TITLE_MAX} characters")
    if details is not None and not isinstance(details, dict):
        raise bad(f"details must be a mapping of label to value, got {type(details).__name__}")
    try:
        encode_limited(details, what="details", limit=conf.get("MAX_VALUE_BYTES"))
    except (NotSerialisable, ValueTooLarge) as exc:
        raise bad(str(exc)) from None
    seconds = parse_bounded(timeout, what="wait_for_approval timeout", minimum=1, maximum=MAX_SLEEP_SECONDS)
    return ApprovalSpec(
        entries, quorum, requested_by, _form_path(form, bad), title, details, seconds,
        *_policy(seconds, remind_every, escalate_after, escalate_to, on_timeout, bad),
    )  # fmt: skip


def _policy(
    timeout: float, remind_every: Any, escalate_after: Any, escalate_to: Any, on_timeout: Any, bad: Any
) -> tuple[float | None, float | None, tuple[str, ...] | None, str]:
    """The reminder, escalation and deadline policy, each checked against the timeout."""
    if on_timeout not in TimeoutPolicy.values:
        raise bad(f"on_timeout must be one of {', '.join(TimeoutPolicy.values)}, got {on_timeout!r:.40}")
    remind = None
    if remind_every is not None:
        remind = parse_bounded(remind_every, what="remind_every", minimum=1, maximum=MAX_SLEEP_SECONDS)
        if remind >= timeout:
            raise bad(f"remind_every ({remind:g}s) must be shorter than the timeout ({timeout:g}s)")
        if timeout / remind > MAX_REMINDERS:
            raise bad(
                f"remind_every {remind:g}s with a timeout of {timeout:g}s would send {int(timeout // remind)} "
                f"reminders; at most {MAX_REMINDERS}"
            )
    if (escalate_after is None) != (escalate_to is None):
        raise bad("escalate_after and escalate_to go together: when, and to whom")
    escalate = None
    targets = None
    if escalate_after is not None:
        escalate = parse_bounded(escalate_after, what="escalate_after", minimum=1, maximum=MAX_SLEEP_SECONDS)
        if escalate >= timeout:
            raise bad(f"escalate_after ({escalate:g}s) must be shorter than the timeout ({timeout:g}s)")
        targets = _check_approvers("escalate_to", escalate_to, bad)
    return remind, escalate, targets, str(on_timeout)


def _check_approvers(argument: str, approvers: Any, bad: Any) -> tuple[str, ...]:
    if isinstance(approvers, str) or not isinstance(approvers, (list, tuple)) or not approvers:
        raise bad(f"{argument} must be a non-empty list like ['group:finance', 'user:ada', 'perm:app.codename']")
    if len(approvers) > 100:
        raise bad(f"{argument} names {len(approvers)} approvers; at most 100 (use a group)")
    return tuple(_check_approver(entry, bad) for entry in approvers)


def _check_approver(entry: Any, bad: Any) -> str:
    kind, _, value = entry.partition(":") if isinstance(entry, str) else ("", "", "")
    if kind not in APPROVER_KINDS or not value or len(value) > 255:
        raise bad(f"approver {entry!r} must be 'user:<username>', 'group:<name>' or 'perm:<app_label>.<codename>'")
    if kind == "perm" and "." not in value:
        raise bad(f"approver {entry!r}: a permission is written 'perm:<app_label>.<codename>'")
    return entry


def _form_path(form: Any, bad: Any) -> str:
    """The importable dotted path of the form class (stored, and imported again to render it)."""
    if form is None:
        return ""
    if not (isinstance(form, type) and issubclass(form, forms.Form)):
        raise bad(f"form must be a django.forms.Form subclass, got {form!r:.80}")
    path = f"{form.__module__}.{form.__qualname__}"
    if pydoc.locate(path) is not form:
        raise bad(f"form {path} must be defined at the top level of a module, so it can be imported again")
    return path


class _TitleFormatter(string.Formatter):
    """``{param}`` fields only: no attribute access or indexing into the params."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not field_name.isidentifier() and not field_name.replace("-", "_").isidentifier():
            raise KeyError(field_name)
        return self.get_value(field_name, args, kwargs), field_name


def format_title(name: str, title: str | None, params: Any) -> str:
    if title is None:
        return name
    try:
        return _TitleFormatter().vformat(title, (), params if isinstance(params, dict) else {})[:TITLE_MAX]
    except (KeyError, IndexError, ValueError) as exc:
        raise WorkflowFatalError(f'wait_for_approval "{name}": title {title!r} names a missing param: {exc}') from None


async def wait_for_approval(replay: ReplayPass, name: str, spec: ApprovalSpec) -> Any:
    """What ``await step.wait_for_approval(...)`` returns: the decision, or its timeout raised."""
    check_step_name(name)
    run = replay.run
    key = replay.next_key(StepKind.APPROVAL, name)
    row = run.steps.get(key)
    if row is not None and row.status == StepStatus.SUCCEEDED:
        return decode(row.result)
    if row is not None and row.status == StepStatus.FAILED:
        raise rebuild_error(row.error or {})
    if not run.records_waits:
        await replay.park()
    now = clock.now()
    forced_timeout = run.overrides.event_timeout_forced(name, key[2])
    if row is None:
        replay.may_start_new_work()
        deadline = now if forced_timeout else now + timedelta(seconds=spec.timeout)
        title = format_title(name, spec.title, decode(run.instance.params))
        row = await replay.store(open_request, run.lease, key, run.new_seq(), deadline, spec, title, now)
        run.steps[key] = row
    timeout_error = error_record(
        WorkflowTimeoutError(
            f'Execution timed out after {int(spec.timeout * 1000)}ms waiting for approval "{name}" (no decision)'
        )
    )
    row = await replay.store(settle_request, run.lease, row, now, timeout_error, forced_timeout)
    run.steps[key] = row
    if row.status == StepStatus.SUCCEEDED:
        decision = decode(row.result)
        payload = decision.get("payload") or {}
        tracing.waited(
            run, "approval", name, row.started_at or now, now, decided_by=payload.get("by"),
            approved=payload.get("approved"),
        )  # fmt: skip
        return decision
    if row.status == StepStatus.FAILED:
        raise rebuild_error(row.error or {})
    await replay.park()


def open_request(
    lease: Lease, key: StepKey, seq: int, deadline: datetime, spec: ApprovalSpec, title: str, now: datetime
) -> StepRow:
    """Record the waiting step and its request, in one fenced transaction."""
    kind, name, occurrence = key
    with transaction.atomic():
        fence(lease, now)
        step = Step.objects.create(
            instance_id=lease.pk, run_number=lease.run_number, kind=kind, name=name, occurrence=occurrence,
            seq=seq, status=StepStatus.WAITING, wake_at=deadline, started_at=now,
        )  # fmt: skip
        instance = step.instance
        request = ApprovalRequest.objects.create(
            instance_id=lease.pk, step=step, workflow_name=instance.workflow_name, instance_key=instance.instance_id,
            step_name=name, occurrence=occurrence, title=title, details=encode(spec.details),
            approvers=list(spec.approvers) if spec.approvers is not None else None, quorum=spec.quorum,
            requested_by=spec.requested_by, form=spec.form_path, created_at=now, **_policy_fields(spec, now, deadline),
        )  # fmt: skip
        entries = spec.approvers if spec.approvers is not None else (f"perm:{Permission.APPROVE.value}",)
        add_approvers(request, entries)
    return StepRow(step.id, kind, name, occurrence, seq, StepStatus.WAITING, wake_at=deadline)


def _policy_fields(spec: ApprovalSpec, now: datetime, deadline: datetime) -> dict[str, Any]:
    """The request's timers: the opening notifications are due at once, then reminders and escalation."""

    def before_deadline(seconds: float | None) -> datetime | None:
        when = None if seconds is None else now + timedelta(seconds=seconds)
        return when if when is not None and when < deadline else None

    return {
        "remind_every": spec.remind_every, "next_reminder_at": before_deadline(spec.remind_every),
        "escalate_to": list(spec.escalate_to) if spec.escalate_to else None,
        "escalate_at": before_deadline(spec.escalate_after), "on_timeout": spec.on_timeout, "nudge_at": now,
    }  # fmt: skip


def add_approvers(request: ApprovalRequest, entries: Any, escalated: bool = False) -> None:
    """Approver rows for ``entries`` ("kind:value"); entries the request already has are kept as they are."""
    ApprovalApprover.objects.bulk_create(
        [
            ApprovalApprover(
                request=request, kind=entry.split(":", 1)[0], value=entry.split(":", 1)[1], escalated=escalated
            )
            for entry in entries
        ],
        ignore_conflicts=True,
    )


def settle_request(
    lease: Lease, row: StepRow, now: datetime, timeout_error: dict[str, Any], forced_timeout: bool = False
) -> StepRow:
    """Give the step its request's decision, or its timeout once the deadline has passed."""
    with transaction.atomic():
        fence(lease, now)
        request = ApprovalRequest.objects.select_for_update().get(step_id=row.id)
        if request.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
            row.result = encode({"type": "approval", "payload": decode(request.result), "timestamp": request.closed_at})
            row.status = StepStatus.SUCCEEDED
            Step.objects.filter(pk=row.id).update(status=row.status, result=row.result, ended_at=now)
        elif forced_timeout or (row.wake_at is not None and row.wake_at <= now):
            if request.status == ApprovalStatus.OPEN:
                metrics.increment("workflows_approval_timeouts", workflow=request.workflow_name)
            if request.status == ApprovalStatus.OPEN and request.on_timeout != TimeoutPolicy.ERROR:
                payload = decide_at_deadline(request, now)
                row.result = encode({"type": "approval", "payload": payload, "timestamp": now})
                row.status = StepStatus.SUCCEEDED
                Step.objects.filter(pk=row.id).update(status=row.status, result=row.result, ended_at=now)
                return row
            if request.status == ApprovalStatus.OPEN:
                ApprovalRequest.objects.filter(pk=request.pk).update(
                    status=ApprovalStatus.TIMED_OUT, closed_at=now, closed_by="timeout", nudge_at=None
                )
            row.status, row.error = StepStatus.FAILED, timeout_error
            Step.objects.filter(pk=row.id).update(status=row.status, error=timeout_error, ended_at=now)
    return row


def decide_at_deadline(request: ApprovalRequest, now: datetime) -> dict[str, Any]:
    """Close an undecided request with its ``on_timeout`` decision, like a person's (``by`` "timeout")."""
    from workflows.decisions import close_request, decision_payload

    approved = request.on_timeout == TimeoutPolicy.APPROVE
    verb = "approved" if approved else "rejected"
    comment = f"No decision by the deadline: {verb} by the request's on_timeout policy"
    default: dict[str, Any] = {"by": "timeout", "on_behalf_of": None, "approved": approved, "comment": comment}
    default.update(data={}, decided_at=now)
    earlier = [decision_payload(d) for d in request.decision_rows.order_by("decided_at", "pk")]
    payload = {**default, "timed_out": True, "decisions": [*earlier, default]}
    outcome = ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED
    close_request(request, outcome, "timeout", payload, now)
    return payload
