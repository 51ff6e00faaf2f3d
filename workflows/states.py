"""The closed sets of the engine, each defined once: statuses, step kinds, permissions.

Code and templates use these names (templates get them from the dashboard's context
processor), never the literal strings. Model-free, so ``workflows`` can export them while
Django is still loading apps.
"""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    """An instance's status (Cloudflare's names; ``waiting`` covers sleeps, retry delays and waits)."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING_FOR_PAUSE = "waitingForPause"
    WAITING = "waiting"
    ERRORED = "errored"
    TERMINATED = "terminated"
    COMPLETE = "complete"


# Nothing happens to a finished instance again (unless it is restarted).
FINISHED: frozenset[str] = frozenset({Status.COMPLETE, Status.ERRORED, Status.TERMINATED})
UNFINISHED: tuple[str, ...] = tuple(s for s in Status.values if s not in FINISHED)
# Statuses in which a worker is (or may be) advancing the instance right now.
ACTIVE: tuple[str, ...] = (Status.QUEUED, Status.RUNNING, Status.WAITING_FOR_PAUSE)


class StepKind(models.TextChoices):
    DO = "do"
    SLEEP = "sleep"
    WAIT = "wait"
    APPROVAL = "approval"
    PATCH = "patch"  # a patch marker: which side of step.patched() this instance took


# How a step's kind is named outside the engine (describe(), the API, the CLI).
PUBLIC_KIND: dict[str, str] = {
    StepKind.DO: "do",
    StepKind.SLEEP: "sleep",
    StepKind.WAIT: "wait_for_event",
    StepKind.APPROVAL: "wait_for_approval",
    StepKind.PATCH: "patch",
}


class StepStatus(models.TextChoices):
    QUEUED = "queued"  # handed to another worker process (fan-out), not started yet
    RUNNING = "running"  # an attempt is executing
    RETRYING = "retrying"  # waiting out a retry delay until wake_at
    SLEEPING = "sleeping"  # a sleep until wake_at
    WAITING = "waiting"  # a wait_for_event with its deadline in wake_at
    SUCCEEDED = "succeeded"  # result stored (a sleep that ended, a received event)
    FAILED = "failed"  # final error stored and re-raised on every replay
    CANCELLED = "cancelled"  # never finished: the instance was terminated or restarted meanwhile (history)


# Steps that hold a timer (wake_at) the instance parks on.
PENDING_STEP: tuple[str, ...] = (StepStatus.RETRYING, StepStatus.SLEEPING, StepStatus.WAITING)
# Steps that have not reached an end.
OPEN_STEP: tuple[str, ...] = (StepStatus.QUEUED, StepStatus.RUNNING, *PENDING_STEP)


class Permission(models.TextChoices):
    """Django permissions of the ``workflows`` app, as ``user.has_perm`` takes them."""

    APPROVE = "workflows.approve_instance", "Can decide approval requests open to approvers (approvers=None)"
    OPERATE = "workflows.operate_instance", "Can create, pause, resume, terminate, restart and retry instances"
    SEND_EVENT = "workflows.send_event", "Can send events to instances (answers wait_for_event, never an approval)"

    @property
    def codename(self) -> str:
        return self.value.split(".", 1)[1]


class Outcome(models.TextChoices):
    """What a decision on an approval request was."""

    APPROVED = "approved"
    REJECTED = "rejected"


class ApprovalStatus(models.TextChoices):
    """Where an approval request stands. Only ``open`` takes decisions."""

    OPEN = "open"
    APPROVED = "approved"  # the quorum of approvals was reached
    REJECTED = "rejected"  # someone rejected it (one rejection closes it)
    TIMED_OUT = "timed_out"  # its deadline passed with no decision
    CANCELLED = "cancelled"  # its instance was terminated or restarted


# How a request that closed with a decision reads, and the kinds of approver entries.
DECIDED: tuple[str, ...] = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
APPROVER_KINDS: tuple[str, ...] = ("user", "group", "perm")


class TimeoutPolicy(models.TextChoices):
    """What an approval request's deadline decides (``on_timeout``)."""

    ERROR = "error"  # the step fails with WorkflowTimeoutError
    APPROVE = "approve"  # the step receives an approval by "timeout"
    REJECT = "reject"  # the step receives a rejection by "timeout"


class NotificationKind(models.TextChoices):
    """Why an approver is told about a request."""

    OPENED = "opened"
    REMINDER = "reminder"
    ESCALATION = "escalation"


class NotificationStatus(models.TextChoices):
    PENDING = "pending"  # queued or between attempts
    SENT = "sent"
    FAILED = "failed"  # every attempt failed (logged, counted, on the timeline)
    SKIPPED = "skipped"  # nothing to send: the request closed first, or no address for this notifier
