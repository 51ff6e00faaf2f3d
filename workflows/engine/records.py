"""What a worker writes as a step runs: its attempts, its result or error, its sleep.

Every function here is fenced on the worker's lease (``leases.fence`` or an inline lease
check in the statement itself), runs on the thread that owns the database connection (see
``engine.bridge``), and updates the in-memory ``StepRow`` to match what it committed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import F, QuerySet

from workflows import prepared
from workflows.engine.bridge import Deferred, absorbs
from workflows.engine.leases import (
    Lease,
    LeaseLost,
    StepLease,
    StepTaken,
    fence,
    lease_check_sql,
    lease_lost_or_paused,
)
from workflows.engine.rows import StepKey, StepRow
from workflows.models import Attempt, Instance, Step
from workflows.states import StepStatus

if TYPE_CHECKING:
    from workflows.engine.bridge import DatabaseBridge


def _step_row(lease: Lease | StepLease, row_id: int) -> QuerySet[Step]:
    """The step's row, fenced on the step lease when a fan-out worker writes it."""
    qs = Step.objects.filter(pk=row_id)
    return qs.filter(lease_token=lease.token) if isinstance(lease, StepLease) else qs


def update_step(lease: Lease | StepLease, row_id: int, **changes: Any) -> None:
    if not _step_row(lease, row_id).update(**changes):
        raise LeaseLost()


@absorbs
def begin_attempt(
    lease: Lease | StepLease,
    key: StepKey,
    row: StepRow | None,
    seq: int,
    config: dict,
    now: datetime,
    *,
    steal: bool = False,
    deferred: Deferred | None = None,
) -> StepRow:
    """Record that an attempt of a step.do starts, before user code runs.

    Committing this first is what lets a crash mid-attempt be seen and counted. The first
    attempt of a new step is one autocommitted statement that carries its own lease check
    (the hot path), and commits the previous step's deferred result with it
    (``defer_success``); retries, stolen and fan-out steps take a short transaction. With
    ``steal`` the step must still be queued for another worker, and is taken back from it.
    """
    if row is None and isinstance(lease, Lease):
        return _begin_new_step(lease, key, seq, config, now, deferred)
    if deferred is not None:
        deferred.write()
    with transaction.atomic():
        fence(lease, now, check_pause=True)
        if steal:
            assert row is not None
            taken = Step.objects.filter(pk=row.id, status=StepStatus.QUEUED, lease_token__isnull=True).update(
                status=StepStatus.RUNNING, attempts=F("attempts") + 1, wake_at=None, attempt_started_at=now
            )
            if not taken:
                raise StepTaken()
            row.attempts += 1
            row.status = StepStatus.RUNNING
        elif row is None:
            # Only the instance's own worker (a Lease) records new steps; a fan-out worker
            # runs steps its coordinator recorded.
            raise LeaseLost()
        else:
            row.attempts += 1
            row.status = StepStatus.RUNNING
            row.wake_at = None
            update_step(
                lease, row.id, status=StepStatus.RUNNING, attempts=row.attempts, wake_at=None, attempt_started_at=now
            )
    row.attempt_started_at = now
    return row


def _begin_new_step(
    lease: Lease, key: StepKey, seq: int, config: dict, now: datetime, deferred: Deferred | None
) -> StepRow:
    if deferred is not None and deferred.fn in _SUCCESS_WRITES:
        step_id = _succeed_and_insert(deferred, lease, key, seq, config, now)
    else:
        if deferred is not None:
            deferred.write()
        step_id = _insert_step_fenced(lease, key, seq, config, now)
    kind, name, occurrence = key
    return StepRow(
        step_id, kind, name, occurrence, seq, StepStatus.RUNNING, config=config, attempts=1, attempt_started_at=now
    )


def _insert_step_sql(condition: str) -> str:
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    return (
        "INSERT INTO wf_step (instance_id, run_number, kind, name, occurrence, seq, status, config, attempts, "
        f"started_at, attempt_started_at) SELECT %s, %s, %s, %s, %s, %s, %s, %s{cast}, 1, %s, %s "
        f"WHERE {condition} RETURNING id"
    )


def _insert_step_params(lease: Lease, key: StepKey, seq: int, config: dict, now: datetime) -> list[Any]:
    kind, name, occurrence = key
    return [
        lease.pk, lease.run_number, kind, name, occurrence, seq, StepStatus.RUNNING, json.dumps(config), now, now,
        lease.pk, lease.token, False,
    ]  # fmt: skip


def _insert_step_fenced(lease: Lease, key: StepKey, seq: int, config: dict, now: datetime) -> int:
    """INSERT the step only while we hold the lease and no pause is asked; else say which."""
    step_id = _try_insert_step(lease, key, seq, config, now)
    if step_id is None:
        raise lease_lost_or_paused(lease)
    return step_id


def _try_insert_step(lease: Lease, key: StepKey, seq: int, config: dict, now: datetime) -> int | None:
    with prepared.cursor() as cursor:
        cursor.execute(_insert_step_sql(lease_check_sql(pause=True)), _insert_step_params(lease, key, seq, config, now))
        found = cursor.fetchone()
    return found[0] if found else None


def _succeed_and_insert(deferred: Deferred, lease: Lease, key: StepKey, seq: int, config: dict, now: datetime) -> int:
    """The previous step's result and this step's start in one commit.

    PostgreSQL: one statement (the UPDATE in a WITH clause; both parts see one snapshot, so
    both or neither pass the lease check; only a pause asked in between stops the INSERT).
    SQLite: both statements in one transaction. Either way a pause keeps the result.
    """
    success = success_cte(deferred, lease)
    if success is None:
        with transaction.atomic():
            deferred.write()  # LeaseLost: nothing is written
            step_id = _try_insert_step(lease, key, seq, config, now)
    else:
        done_sql, done_params = success
        sql = f"WITH {done_sql} " + _insert_step_sql(f"EXISTS (SELECT 1 FROM done) AND {lease_check_sql(pause=True)}")
        with prepared.cursor() as cursor:
            cursor.execute(sql, [*done_params, *_insert_step_params(lease, key, seq, config, now)])
            found = cursor.fetchone()
        step_id = found[0] if found else None
    if step_id is not None:
        return step_id
    # Nothing started: the lease is gone (nothing written) or a pause was asked (the result was).
    raise lease_lost_or_paused(lease)


def defer_success(
    bridge: DatabaseBridge, lease: Lease | StepLease, row: StepRow, result_text: str, now: datetime
) -> bool:
    """Hand the step's result to the bridge to commit with the next write; False when it must
    be written now (a fan-out worker's step, or the first success after a worker crash)."""
    if not isinstance(lease, Lease) or lease.crashes:
        return False
    _succeeded(row, result_text)
    bridge.defer(attempt_succeeded, lease, row, result_text, now)
    return True


def _succeeded(row: StepRow, result_text: str) -> None:
    row.status = StepStatus.SUCCEEDED
    row.result = result_text


_SUCCESS_SQL = (
    "UPDATE wf_step SET status = %s, result = %s, ended_at = %s, lease_token = NULL "
    f"WHERE id = %s AND {lease_check_sql()}"
)


# A wait's result, stored only together with its event's mark (see engine.events).
_CONSUME_SQL = (
    "UPDATE wf_event SET consumed_at = COALESCE(consumed_at, %s), consumed_by_id = %s "
    f"WHERE id = %s AND (consumed_at IS NULL OR consumed_by_id = %s) AND {lease_check_sql()}"
)


def _consume_params(lease: Lease, row: StepRow, now: datetime) -> list[Any]:
    return [now, row.id, row.event_id, row.id, lease.pk, lease.token]


def success_cte(deferred: Deferred | None, lease: Lease) -> tuple[str, list[Any]] | None:
    """PostgreSQL: a deferred write that stores a step result of this lease, as WITH clauses
    ending in ``done`` (the step's id when written), for the next write's statement to
    start with; None for any other deferred write, or on SQLite (write it first, then)."""
    if connection.vendor != "postgresql" or deferred is None or deferred.fn not in _SUCCESS_WRITES:
        return None
    done_lease, row, result_text, ended_at = deferred.args
    if done_lease is not lease:
        return None
    return _success_cte(lease, row, result_text, ended_at)


def _success_cte(lease: Lease, row: StepRow, result_text: str, now: datetime) -> tuple[str, list[Any]]:
    """PostgreSQL: the result's write as WITH clauses ending in ``done`` (the step's id when written)."""
    success_params = [StepStatus.SUCCEEDED, result_text, now, row.id, lease.pk, lease.token]
    if row.event_id is None:
        return f"done AS ({_SUCCESS_SQL} RETURNING id)", success_params
    sql = (
        f"consumed AS ({_CONSUME_SQL} RETURNING id), "
        f"done AS ({_SUCCESS_SQL} AND EXISTS (SELECT 1 FROM consumed) RETURNING id)"
    )
    return sql, [*_consume_params(lease, row, now), *success_params]


def store_wait_result(lease: Lease, row: StepRow, result_text: str, now: datetime) -> None:
    """A wait took its event: mark the event consumed by the step and store the result, in
    one commit, lease-checked (the replay reads the event without writing: engine.events)."""
    if connection.vendor == "postgresql":
        done_sql, params = _success_cte(lease, row, result_text, now)
        with prepared.cursor() as cursor:
            cursor.execute(f"WITH {done_sql} SELECT id FROM done", params)
            written = cursor.fetchone() is not None
    else:
        with transaction.atomic(), prepared.cursor() as cursor:
            cursor.execute(_CONSUME_SQL, _consume_params(lease, row, now))
            written = cursor.rowcount == 1
            if written:
                store_result(lease, row, result_text, now)
    if not written:
        raise LeaseLost()
    _succeeded(row, result_text)


def store_result(lease: Lease, row: StepRow, result_text: str, now: datetime) -> None:
    """The step succeeded with ``result_text``: one autocommitted, lease-checked UPDATE."""
    with prepared.cursor() as cursor:
        cursor.execute(_SUCCESS_SQL, [StepStatus.SUCCEEDED, result_text, now, row.id, lease.pk, lease.token])
        if cursor.rowcount != 1:
            raise LeaseLost()
    _succeeded(row, result_text)


def attempt_succeeded(lease: Lease | StepLease, row: StepRow, result_text: str, now: datetime) -> None:
    """Store a step.do's result: one autocommitted, lease-checked UPDATE on the hot path."""
    if isinstance(lease, Lease):
        store_result(lease, row, result_text, now)
        if lease.crashes:
            # The step survived: the crash-loop counter starts again.
            Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(worker_crashes=0)
            lease.crashes = 0
    else:
        with transaction.atomic():
            fence(lease, now)
            update_step(lease, row.id, status=StepStatus.SUCCEEDED, result=result_text, ended_at=now, lease_token=None)
    _succeeded(row, result_text)


def attempt_failed(
    lease: Lease | StepLease,
    row: StepRow,
    error: dict[str, Any],
    traceback_text: str,
    now: datetime,
    *,
    retry_at: datetime | None,
    retry_delay: float | None,
    record_attempt: bool = True,
) -> None:
    """Record a failed attempt: the step waits for its retry at ``retry_at``, or fails for good."""
    with transaction.atomic():
        # Not a reset of worker_crashes: only a step that succeeds proves the worker survives it.
        fence(lease, now)
        if record_attempt:
            Attempt.objects.create(
                step_id=row.id, number=row.attempts, started_at=row.attempt_started_at or now,
                ended_at=now, success=False, error=error, traceback=traceback_text, retry_delay=retry_delay,
            )  # fmt: skip
        elif retry_delay is not None:
            Attempt.objects.filter(step_id=row.id, number=row.attempts).update(retry_delay=retry_delay)
        if retry_at is None:
            update_step(
                lease, row.id, status=StepStatus.FAILED, error=error, ended_at=now, wake_at=None, lease_token=None
            )
            row.status, row.error, row.wake_at = StepStatus.FAILED, error, None
        elif retry_at > now:
            # Waiting out a delay: a remote worker (fan-out) lets go of the step.
            update_step(lease, row.id, status=StepStatus.RETRYING, wake_at=retry_at, lease_token=None)
            row.status, row.wake_at = StepStatus.RETRYING, retry_at
        else:
            update_step(lease, row.id, status=StepStatus.RETRYING, wake_at=retry_at)
            row.status, row.wake_at = StepStatus.RETRYING, retry_at


def begin_sleep(lease: Lease, key: StepKey, seq: int, wake_at: datetime, now: datetime) -> StepRow:
    """Record a new sleep (already over when ``wake_at`` is not in the future)."""
    kind, name, occurrence = key
    done = wake_at <= now
    status = StepStatus.SUCCEEDED if done else StepStatus.SLEEPING
    with transaction.atomic():
        fence(lease, now)
        step = Step.objects.create(
            instance_id=lease.pk, run_number=lease.run_number, kind=kind, name=name, occurrence=occurrence,
            seq=seq, status=status, wake_at=wake_at, started_at=now, ended_at=now if done else None,
        )  # fmt: skip
    return StepRow(step.id, kind, name, occurrence, seq, status, wake_at=wake_at)


def end_sleep(lease: Lease, row: StepRow, now: datetime) -> None:
    with transaction.atomic():
        fence(lease, now)
        Step.objects.filter(pk=row.id).update(status=StepStatus.SUCCEEDED, ended_at=now)
    row.status = StepStatus.SUCCEEDED


# The deferred writes that store a step's result (records.defer_success, engine.waits).
_SUCCESS_WRITES = (attempt_succeeded, store_result, store_wait_result)
