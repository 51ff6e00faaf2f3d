"""What a worker writes while it advances an instance, each in one short transaction.

Every function here is fenced: it first renews the worker's lease with
``UPDATE wf_instance ... WHERE id = %s AND lease_token = <ours>`` and raises ``LeaseLost``
when no row matches. An instance that was terminated, restarted or taken over by another
worker therefore never gets a write from the old one, which is what guarantees that an
instance never advances in two workers at once. These functions run on the thread that
owns the database connection (see ``runtime.bridge``).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Case, F, Q, Subquery, Value, When
from django.db.models.functions import Coalesce

from workflows import conf
from workflows.models import PENDING_STEP, TERMINAL, Attempt, Event, Instance, Status, Step, StepStatus
from workflows.values import encode

INTERNAL_ERROR = {"name": "WorkflowInternalError", "message": "Attempt failed due to internal workflows error (the worker running it stopped)"}


class LeaseLost(Exception):
    """The instance is no longer ours: terminated, restarted, or taken over."""


class PauseRequested(Exception):
    """A pause was requested; the next step must not start."""


@dataclass
class Lease:
    pk: int
    token: str
    events_version: int
    crashes: int = 0  # worker crashes before this claim; reset by the first step that succeeds


@dataclass
class StepLease:
    """A worker running steps of an instance for its coordinator (fan-out), under one token."""

    step_id: int  # the step whose kick started it; others may share the token
    pk: int  # the instance
    token: str


def _step_row(lease, row_id: int):
    """The step's row, fenced on the step lease when a fan-out worker writes it."""
    qs = Step.objects.filter(pk=row_id)
    return qs.filter(lease_token=lease.token) if isinstance(lease, StepLease) else qs


def _update_step(lease, row_id: int, **changes) -> None:
    if not _step_row(lease, row_id).update(**changes):
        raise LeaseLost()


class StepTaken(Exception):
    """Another worker claimed the queued step first."""


@dataclass
class StepRow:
    """The in-memory copy of a Step row that replay reads instead of querying per step."""

    id: int
    kind: str
    name: str
    occurrence: int
    seq: int
    status: str
    result: str | None = None
    error: dict | None = None
    config: dict | None = None
    attempts: int = 0
    wake_at: datetime | None = None
    lease_token: str | None = None  # set while another worker process runs the step
    attempt_started_at: datetime | None = None
    lease_until: datetime | None = None


@dataclass
class Claim:
    lease: Lease
    instance: Instance
    steps: dict = field(default_factory=dict)  # (kind, name, occurrence) -> StepRow
    max_seq: int = 0


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=conf.get("LEASE_SECONDS"))


def claimable(now: datetime) -> Q:
    """Instances with work a worker may take now: queued; waiting and due; a dead worker's."""
    return (
        Q(status=Status.QUEUED)
        | Q(status=Status.WAITING, wake_at__lte=now)
        | Q(status__in=[Status.RUNNING, Status.WAITING_FOR_PAUSE], lease_until__lt=now)
    )


def claim(pk: int, now: datetime) -> Claim | None:
    """Take the instance if it has work and nobody holds it; load its steps for replay.

    Claimable: queued; waiting and due; running (or waitingForPause) whose lease ran out
    because its worker died. Taking over a dead worker's lease counts a worker crash; the
    attempts it left running are recorded as failed so the step's retry rules apply.
    Two round trips in the common case: the claiming UPDATE returns the instance's row,
    then one SELECT loads its steps (the lease now keeps other workers out).
    """
    token = uuid.uuid4().hex
    until = _lease_until(now)
    updated = (
        Instance.objects.filter(pk=pk)
        .filter(claimable(now))
        .update(
            status=Case(When(status=Status.WAITING_FOR_PAUSE, then=Value(Status.WAITING_FOR_PAUSE)), default=Value(Status.RUNNING)),
            worker_crashes=F("worker_crashes") + Case(When(lease_token__isnull=False, then=Value(1)), default=Value(0)),
            lease_token=token,
            lease_until=until,
            due_at=until,
            started_at=Coalesce("started_at", Value(now)),
            updated_at=now,
        )
    )
    if not updated:
        return None
    instance = Instance.objects.filter(pk=pk, lease_token=token).first()
    if instance is None:
        return None  # taken over again in between (only if this worker stalled a whole lease)
    rows, max_seq = _load_steps(pk)
    # A running step is a dead worker's, unless another worker runs it now (fan-out lease).
    interrupted = [
        row.id for row in rows.values()
        if row.status == StepStatus.RUNNING and not (row.lease_token and row.lease_until and row.lease_until >= now)
    ]
    if interrupted:
        record_interrupted(Step.objects.filter(pk__in=interrupted), now)
    return Claim(Lease(pk, token, instance.events_version, instance.worker_crashes), instance, rows, max_seq)


def _load_steps(instance_pk: int) -> tuple[dict, int]:
    """Every step of an instance, keyed (kind, name, occurrence), and the highest seq: one query."""
    rows = {}
    for values in Step.objects.filter(instance_id=instance_pk).values(
        "id", "kind", "name", "occurrence", "seq", "status", "result", "error", "config", "attempts", "wake_at",
        "lease_token", "attempt_started_at", "lease_until",
    ):
        row = StepRow(**values)
        rows[(row.kind, row.name, row.occurrence)] = row
    return rows, max((row.seq for row in rows.values()), default=0)


def record_interrupted(steps, now: datetime, error: dict = INTERNAL_ERROR) -> None:
    """A failed Attempt row for the running attempt of each of ``steps`` (its worker is gone)."""
    for step_id, number, started in steps.values_list("id", "attempts", "attempt_started_at"):
        Attempt.objects.get_or_create(
            step_id=step_id, number=number,
            defaults={"started_at": started or now, "ended_at": now, "success": False, "error": error},
        )


def _fence(lease, now: datetime, *, check_pause: bool = False) -> None:
    """Renew our lease or raise LeaseLost/PauseRequested.

    For a StepLease: the step must still be ours and its instance unfinished (a step in
    flight finishes even if a pause was asked; terminate and restart stop it).
    """
    until = _lease_until(now)
    if isinstance(lease, StepLease):
        if not Step.objects.filter(instance_id=lease.pk, lease_token=lease.token).update(lease_until=until):
            raise LeaseLost()
        if not Instance.objects.filter(pk=lease.pk).exclude(status__in=TERMINAL).exists():
            raise LeaseLost()
        return
    qs = Instance.objects.filter(pk=lease.pk, lease_token=lease.token)
    if check_pause:
        updated = qs.filter(pause_requested=False).update(lease_until=until, due_at=until, updated_at=now)
        if not updated:
            if qs.exists():
                raise PauseRequested()
            raise LeaseLost()
        return
    if not qs.update(lease_until=until, due_at=until, updated_at=now):
        raise LeaseLost()


def renew(lease, now: datetime) -> bool:
    """Heartbeat for a long step; False when the lease is gone."""
    if isinstance(lease, StepLease):
        return renew_step(lease, now)
    until = _lease_until(now)
    return bool(
        Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(lease_until=until, due_at=until)
    )


def begin_attempt(lease, key, row: StepRow | None, seq: int, config: dict, now: datetime, *, steal: bool = False) -> StepRow:
    """Record that an attempt of a step.do starts, before user code runs.

    Committing this first is what lets a crash mid-attempt be seen and counted. The first
    attempt of a new step is one autocommitted statement that carries its own lease check
    (the hot path); retries, stolen and fan-out steps take a short transaction. With
    ``steal`` the step must still be queued for another worker, and is taken back from it.
    """
    kind, name, occurrence = key
    if row is None and isinstance(lease, Lease):
        step_id = _insert_step_fenced(lease, kind, name, occurrence, seq, config, now)
        return StepRow(step_id, kind, name, occurrence, seq, StepStatus.RUNNING, config=config, attempts=1, attempt_started_at=now)
    with transaction.atomic():
        _fence(lease, now, check_pause=True)
        if steal:
            taken = Step.objects.filter(pk=row.id, status=StepStatus.QUEUED, lease_token__isnull=True).update(
                status=StepStatus.RUNNING, attempts=F("attempts") + 1, wake_at=None, attempt_started_at=now
            )
            if not taken:
                raise StepTaken()
            row.attempts += 1
            row.status = StepStatus.RUNNING
        elif row is None:
            step = Step.objects.create(
                instance_id=lease.pk, kind=kind, name=name, occurrence=occurrence, seq=seq,
                status=StepStatus.RUNNING, config=config, attempts=1, started_at=now, attempt_started_at=now,
            )
            row = StepRow(step.id, kind, name, occurrence, seq, StepStatus.RUNNING, config=config, attempts=1)
        else:
            row.attempts += 1
            row.status = StepStatus.RUNNING
            row.wake_at = None
            _update_step(lease, row.id, status=StepStatus.RUNNING, attempts=row.attempts, wake_at=None, attempt_started_at=now)
    row.attempt_started_at = now
    return row


def _lease_check_sql() -> str:
    return "EXISTS (SELECT 1 FROM wf_instance WHERE id = %s AND lease_token = %s{pause})"


def _insert_step_fenced(lease: Lease, kind, name, occurrence, seq, config, now) -> int:
    """INSERT the step only while we hold the lease and no pause is asked; else say which."""
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    sql = (
        "INSERT INTO wf_step (instance_id, kind, name, occurrence, seq, status, config, attempts, started_at, attempt_started_at) "
        f"SELECT %s, %s, %s, %s, %s, %s, %s{cast}, 1, %s, %s WHERE "
        + _lease_check_sql().format(pause=" AND pause_requested = %s")
        + " RETURNING id"
    )
    params = [lease.pk, kind, name, occurrence, seq, StepStatus.RUNNING, json.dumps(config), now, now, lease.pk, lease.token, False]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found:
        return found[0]
    if Instance.objects.filter(pk=lease.pk, lease_token=lease.token).exists():
        raise PauseRequested()
    raise LeaseLost()


def attempt_succeeded(lease, row: StepRow, result_text: str, now: datetime) -> None:
    """Store the step's result: one autocommitted, lease-checked UPDATE on the hot path."""
    if isinstance(lease, Lease):
        sql = (
            "UPDATE wf_step SET status = %s, result = %s, ended_at = %s, lease_token = NULL WHERE id = %s AND "
            + _lease_check_sql().format(pause="")
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [StepStatus.SUCCEEDED, result_text, now, row.id, lease.pk, lease.token])
            if cursor.rowcount != 1:
                raise LeaseLost()
        if lease.crashes:
            # The step survived: the crash-loop counter starts again.
            Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(worker_crashes=0)
            lease.crashes = 0
    else:
        with transaction.atomic():
            _fence(lease, now)
            _update_step(lease, row.id, status=StepStatus.SUCCEEDED, result=result_text, ended_at=now, lease_token=None)
    row.status = StepStatus.SUCCEEDED
    row.result = result_text


def attempt_failed(
    lease: Lease, row: StepRow, error: dict, traceback_text: str, now: datetime,
    *, retry_at: datetime | None, retry_delay: float | None, record_attempt: bool = True,
) -> None:
    """Record a failed attempt: the step waits for its retry at ``retry_at``, or fails for good."""
    with transaction.atomic():
        # Not a reset of worker_crashes: only a step that succeeds proves the worker survives it.
        _fence(lease, now)
        if record_attempt:
            Attempt.objects.create(
                step_id=row.id, number=row.attempts, started_at=row.attempt_started_at or now,
                ended_at=now, success=False, error=error, traceback=traceback_text, retry_delay=retry_delay,
            )
        elif retry_delay is not None:
            Attempt.objects.filter(step_id=row.id, number=row.attempts).update(retry_delay=retry_delay)
        if retry_at is None:
            _update_step(lease, row.id, status=StepStatus.FAILED, error=error, ended_at=now, wake_at=None, lease_token=None)
            row.status, row.error, row.wake_at = StepStatus.FAILED, error, None
        elif retry_at > now:
            # Waiting out a delay: a remote worker (fan-out) lets go of the step.
            _update_step(lease, row.id, status=StepStatus.RETRYING, wake_at=retry_at, lease_token=None)
            row.status, row.wake_at = StepStatus.RETRYING, retry_at
        else:
            _update_step(lease, row.id, status=StepStatus.RETRYING, wake_at=retry_at)
            row.status, row.wake_at = StepStatus.RETRYING, retry_at


# --------------------------------------------------------------------------- fan-out


def queue_remote_step(lease: Lease, key, row: StepRow | None, seq: int, config: dict, now: datetime) -> StepRow:
    """Hand a step to another worker: the step row says "queued" and a run_step kick goes out."""
    from workflows.dispatch import kick_step

    kind, name, occurrence = key
    with transaction.atomic():
        _fence(lease, now, check_pause=True)
        if row is None:
            step = Step.objects.create(
                instance_id=lease.pk, kind=kind, name=name, occurrence=occurrence, seq=seq,
                status=StepStatus.QUEUED, config=config, attempts=0, started_at=now,
            )
            row = StepRow(step.id, kind, name, occurrence, seq, StepStatus.QUEUED, config=config)
        else:
            Step.objects.filter(pk=row.id).update(status=StepStatus.QUEUED, wake_at=None, lease_token=None)
            row.status, row.wake_at = StepStatus.QUEUED, None
        kick_step(row.id)
    return row


def watch_steps(lease: Lease, step_ids: list[int], now: datetime) -> dict[int, dict]:
    """The coordinator's view of the steps it handed out; re-queues those whose worker died."""
    from workflows.dispatch import kick_step

    with transaction.atomic():
        _fence(lease, now)
        rows = {
            r["id"]: r
            for r in Step.objects.filter(pk__in=step_ids).values("id", "status", "result", "error", "attempts", "wake_at", "lease_token", "lease_until")
        }
        for step_id, r in rows.items():
            if r["lease_token"] and r["lease_until"] and r["lease_until"] < now and r["status"] in (StepStatus.QUEUED, StepStatus.RUNNING):
                record_interrupted(Step.objects.filter(pk=step_id, status=StepStatus.RUNNING), now)
                Step.objects.filter(pk=step_id, lease_token=r["lease_token"]).update(status=StepStatus.QUEUED, lease_token=None, lease_until=None)
                r["status"], r["lease_token"] = StepStatus.QUEUED, None
                kick_step(step_id)
    return rows


def claim_step(step_id: int, now: datetime, batch: int = 1):
    """Take a queued step (or one whose worker died) to run it, plus up to ``batch - 1`` more
    queued steps of the same instance; returns (StepLease, Claim, target keys) or None."""
    token = uuid.uuid4().hex
    claimable_step = Q(status=StepStatus.QUEUED, lease_token__isnull=True) | Q(
        status__in=[StepStatus.QUEUED, StepStatus.RUNNING], lease_token__isnull=False, lease_until__lt=now
    )
    with transaction.atomic():
        taken = (
            Step.objects.filter(pk=step_id).filter(claimable_step).exclude(instance__status__in=TERMINAL)
            .update(lease_token=token, lease_until=_lease_until(now))
        )
        if not taken:
            return None
        step = Step.objects.select_related("instance").get(pk=step_id)
        if batch > 1:
            more = list(
                Step.objects.filter(instance_id=step.instance_id, status=StepStatus.QUEUED, lease_token__isnull=True)
                .exclude(pk=step_id).order_by("seq").values_list("pk", flat=True)[: batch - 1]
            )
            Step.objects.filter(pk__in=more, lease_token__isnull=True).update(lease_token=token, lease_until=_lease_until(now))
        record_interrupted(Step.objects.filter(lease_token=token, status=StepStatus.RUNNING), now)
        rows, max_seq = _load_steps(step.instance_id)
        targets = {key for key, row in rows.items() if row.lease_token == token}
    lease = StepLease(step_id, step.instance_id, token)
    return lease, Claim(lease, step.instance, rows, max_seq), targets


def release_steps(lease: StepLease) -> None:
    """Give back claimed steps this worker did not reach; the coordinator will run them."""
    Step.objects.filter(instance_id=lease.pk, lease_token=lease.token, status=StepStatus.QUEUED).update(lease_token=None, lease_until=None)


def renew_step(lease: StepLease, now: datetime) -> bool:
    return bool(Step.objects.filter(instance_id=lease.pk, lease_token=lease.token).update(lease_until=_lease_until(now)))


def begin_sleep(lease: Lease, key, seq: int, wake_at: datetime, now: datetime) -> StepRow:
    kind, name, occurrence = key
    done = wake_at <= now
    status = StepStatus.SUCCEEDED if done else StepStatus.SLEEPING
    with transaction.atomic():
        _fence(lease, now)
        step = Step.objects.create(
            instance_id=lease.pk, kind=kind, name=name, occurrence=occurrence, seq=seq, status=status,
            wake_at=wake_at, started_at=now, ended_at=now if done else None,
        )
    return StepRow(step.id, kind, name, occurrence, seq, status, wake_at=wake_at)


def end_sleep(lease: Lease, row: StepRow, now: datetime) -> None:
    with transaction.atomic():
        _fence(lease, now)
        Step.objects.filter(pk=row.id).update(status=StepStatus.SUCCEEDED, ended_at=now)
    row.status = StepStatus.SUCCEEDED


def receive_event(
    lease: Lease, key, row: StepRow | None, seq: int, event_type: str, deadline: datetime, timeout_error: dict,
    now: datetime, *, take_events: bool = True,
):
    """Give a wait_for_event its event, its timeout, or a place in the waiting list.

    Takes the oldest buffered event of the type that arrived no later than the deadline
    (FIFO per type): one fenced ``UPDATE ... RETURNING`` marks it consumed, in the same
    transaction as the step's result, so an event is consumed once and never lost. Once
    the deadline has passed with no such event the wait fails for good, so a timed-out wait
    never consumes a later event. Returns the updated StepRow.
    """
    kind, name, occurrence = key
    if row is None:
        row = _insert_wait_fenced(lease, kind, name, occurrence, seq, event_type, deadline, now)
    if take_events:
        with transaction.atomic():
            taken = _take_event_fenced(lease, row.id, event_type, deadline, now)
            if taken is not None:
                from workflows.values import decode

                payload, created_at = taken
                row.result = encode({"type": event_type, "payload": decode(payload), "timestamp": created_at})
                row.status = StepStatus.SUCCEEDED
                Step.objects.filter(pk=row.id).update(status=row.status, result=row.result, ended_at=now)
                return row
    if deadline <= now:
        with transaction.atomic():
            _fence(lease, now)
            row.status, row.error = StepStatus.FAILED, timeout_error
            Step.objects.filter(pk=row.id).update(status=row.status, error=timeout_error, ended_at=now)
    return row


def _insert_wait_fenced(lease: Lease, kind, name, occurrence, seq, event_type, deadline, now) -> StepRow:
    sql = (
        "INSERT INTO wf_step (instance_id, kind, name, occurrence, seq, status, attempts, started_at, wake_at, event_type) "
        "SELECT %s, %s, %s, %s, %s, %s, 0, %s, %s, %s WHERE " + _lease_check_sql().format(pause="") + " RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [lease.pk, kind, name, occurrence, seq, StepStatus.WAITING, now, deadline, event_type, lease.pk, lease.token])
        found = cursor.fetchone()
    if not found:
        raise LeaseLost()
    return StepRow(found[0], kind, name, occurrence, seq, StepStatus.WAITING, wake_at=deadline)


def _take_event_fenced(lease: Lease, step_id: int, event_type: str, deadline: datetime, now: datetime):
    """Mark the oldest matching event consumed by the step; (payload, created_at) or None."""
    sql = (
        "UPDATE wf_event SET consumed_at = %s, consumed_by_id = %s WHERE id = ("
        " SELECT id FROM wf_event WHERE instance_id = %s AND type = %s AND consumed_at IS NULL AND created_at <= %s"
        " ORDER BY id LIMIT 1) AND " + _lease_check_sql().format(pause="") + " RETURNING payload, created_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, step_id, lease.pk, event_type, deadline, lease.pk, lease.token])
        found = cursor.fetchone()
    if found is None:
        if not Instance.objects.filter(pk=lease.pk, lease_token=lease.token).exists():
            raise LeaseLost()
        return None
    payload, created_at = found
    if isinstance(created_at, str):  # SQLite returns text from a raw RETURNING
        created_at = Event._meta.get_field("created_at").to_python(created_at)
    if created_at.tzinfo is None:
        from datetime import UTC

        created_at = created_at.replace(tzinfo=UTC)
    return payload, created_at


def park(lease: Lease, now: datetime) -> bool:
    """Release the instance until its earliest timer; paused instead if a pause was asked.

    One UPDATE (the earliest timer is a subquery). It succeeds only if no event arrived
    since the claim (``events_version``); otherwise it returns False and the caller replays
    again, so an event racing with parking is never missed. Raises LeaseLost when the
    instance is no longer ours.
    """
    next_wake = Coalesce(
        Subquery(
            Step.objects.filter(instance_id=lease.pk, status__in=PENDING_STEP)
            .order_by("wake_at").values("wake_at")[:1]
        ),
        Value(now),
    )
    qs = Instance.objects.filter(pk=lease.pk, lease_token=lease.token)
    updated = qs.filter(events_version=lease.events_version).update(
        status=Case(When(pause_requested=True, then=Value(Status.PAUSED)), default=Value(Status.WAITING)),
        paused_at=Case(When(pause_requested=True, then=Value(now)), default=Value(None)),
        wake_at=next_wake,
        due_at=Case(When(pause_requested=True, then=Value(None)), default=next_wake),
        lease_token=None,
        lease_until=None,
        updated_at=now,
    )
    if updated:
        return True
    current = qs.values_list("events_version", flat=True).first()
    if current is None:
        raise LeaseLost()
    lease.events_version = current
    return False


def hand_back(lease: Lease, now: datetime) -> None:
    """Give the instance back to the queue now (worker shutting down, or its time slice is up)."""
    from workflows.dispatch import kick

    grace = timedelta(seconds=conf.get("DISPATCH_GRACE_SECONDS"))
    with transaction.atomic():
        updated = Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(
            status=Case(When(pause_requested=True, then=Value(Status.PAUSED)), default=Value(Status.QUEUED)),
            paused_at=Case(When(pause_requested=True, then=Value(now)), default=Value(None)),
            wake_at=now,
            due_at=Case(When(pause_requested=True, then=Value(None)), default=Value(now + grace)),
            lease_token=None,
            lease_until=None,
            updated_at=now,
        )
        if not updated:
            raise LeaseLost()
        kick(lease.pk)


def finish(lease: Lease, now: datetime, *, output_text: str | None = None, error: dict | None = None) -> None:
    status = Status.ERRORED if error is not None else Status.COMPLETE
    updated = Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(
        status=status, output=output_text, error=error, ended_at=now, wake_at=None, due_at=None,
        lease_token=None, lease_until=None, pause_requested=False, updated_at=now,
    )
    if not updated:
        raise LeaseLost()


def fail_crash_loop(pk: int, lease: Lease, crashes: int, now: datetime) -> None:
    steps = list(Step.objects.filter(instance_id=pk, status=StepStatus.RUNNING).values_list("name", flat=True))
    where = f" (in step {', '.join(repr(s) for s in steps)})" if steps else ""
    finish(lease, now, error={
        "name": "WorkflowInternalError",
        "message": f"the worker running this instance died {crashes} times in a row{where}; giving up "
                   f"(WORKFLOWS['MAX_WORKER_CRASHES'] is {conf.get('MAX_WORKER_CRASHES')})",
    })

