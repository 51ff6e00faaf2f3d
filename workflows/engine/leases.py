"""Leases: which worker may advance an instance, or run a handed-out step, right now.

- ``claim`` takes an instance that has work and nobody holds (or whose worker died) and
  gives the worker a random token with an expiry (``WORKFLOWS["LEASE_SECONDS"]``).
- ``fence`` renews the lease inside every write transaction and raises ``LeaseLost`` when
  the token no longer matches: an instance that was terminated, restarted or taken over by
  another worker never gets a write from the old one. That is what guarantees that one
  instance never advances in two workers at once.
- ``Heartbeat`` renews the leases of this process's instances while long steps run.
- ``claim_step`` / ``StepLease``: the same for a step handed to another worker (fan-out).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import Error as DatabaseFailure
from django.db import close_old_connections, connection, transaction
from django.db.models import Q

from workflows import clock, conf, metrics, prepared
from workflows.engine.rows import (
    STEPS_JSON_PARAMS,
    STEPS_JSON_SQL,
    Claim,
    StepKey,
    StepRow,
    keyed,
    load_steps,
    rows_from_json,
)
from workflows.history import record_interrupted
from workflows.models import Instance, Step
from workflows.states import FINISHED, Status, StepStatus
from workflows.versions import deployment, known_versions

log = logging.getLogger("workflows.engine")


class LeaseLost(Exception):
    """The instance is no longer ours: terminated, restarted, or taken over."""


class PauseRequested(Exception):
    """A pause was requested; the next step must not start."""


class StepTaken(Exception):
    """Another worker claimed the queued step first."""


@dataclass
class Lease:
    """A worker's hold on an instance."""

    pk: int
    token: str
    events_version: int
    crashes: int = 0  # worker crashes before this claim; reset by the first step that succeeds
    run_number: int = 1  # the instance's current run: new steps are recorded in it


@dataclass
class StepLease:
    """A worker running handed-out steps of an instance for its coordinator, under one token."""

    step_id: int  # the step whose kick started it; others may share the token
    pk: int  # the instance
    token: str


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=conf.get("LEASE_SECONDS"))


def claimable(now: datetime) -> Q:
    """Instances with work a worker may take now: queued; waiting and due; a dead worker's."""
    return (
        Q(status=Status.QUEUED)
        | Q(status=Status.WAITING, wake_at__lte=now)
        | Q(status__in=[Status.RUNNING, Status.WAITING_FOR_PAUSE], lease_until__lt=now)
    )


def pinned() -> Q:
    """With ``PIN_VERSIONS``: only instances of the workflow versions this process's code has
    (and those created before versions were recorded). Without it: every instance."""
    if not conf.get("PIN_VERSIONS"):
        return Q()
    mine = Q(version="")
    for workflow, version in known_versions().items():
        mine |= Q(workflow_name=workflow, version=version)
    return mine


def claim(pk: int | None, now: datetime) -> Claim[Lease] | None:
    """Take the instance if it has work and nobody holds it; load its steps for replay.

    ``pk`` None: the oldest runnable instance (queued, or waiting and due) that no other
    worker is taking at this moment (PostgreSQL's ``SKIP LOCKED``; see ``engine.backlog``).

    Taking over a dead worker's lease counts a worker crash; the attempts it left running
    are recorded as failed so the step's retry rules apply. One round trip: the claiming
    UPDATE returns the row and, on PostgreSQL, the steps (a first claim has none); SQLite
    reads them with one SELECT after it (the lease now keeps other workers out).
    """
    token = uuid.uuid4().hex
    until = lease_until(now)
    instance = _take(pk, token, until, now)
    if instance is None:
        return None
    pk = instance.pk
    if instance.wake_at is not None and instance.worker_crashes == 0:
        # Due at wake_at (created, woken, retried): how long it waited for a worker.
        lag = max(0.0, (now - instance.wake_at).total_seconds())
        metrics.time_taken("workflows_schedule_to_start_seconds", lag, workflow=instance.workflow_name)
    rows: dict[StepKey, StepRow]
    if instance.started_at == now:
        rows, max_seq = {}, 0  # its first claim: no worker has recorded a step yet
    elif connection.vendor == "postgresql":
        rows, max_seq = keyed(rows_from_json(instance.steps_json))  # type: ignore[attr-defined]
    else:
        rows, max_seq = load_steps(pk, instance.run_number)
    # A running step is a dead worker's, unless another worker runs it now (fan-out lease).
    interrupted = [
        row.id
        for row in rows.values()
        if row.status == StepStatus.RUNNING and not (row.lease_token and row.lease_until and row.lease_until >= now)
    ]
    if interrupted:
        record_interrupted(Step.objects.filter(pk__in=interrupted), now)
    lease = Lease(pk, token, instance.events_version, instance.worker_crashes, instance.run_number)
    return Claim(lease, instance, rows, max_seq)


def _take(pk: int | None, token: str, until: datetime, now: datetime) -> Instance | None:
    """The claiming compare-and-set, returning the claimed row: one UPDATE ... RETURNING.

    Written in SQL because it is the hottest statement there is, and building it with the
    ORM (its CASE expressions above all) cost more than running it. Its condition is
    ``claimable()``'s, and ``pinned()``'s.
    """
    runnable, runnable_params = _claimable_sql(now)
    which = "%s"  # this instance, or (below) the oldest runnable one
    which_params: list[Any] = [pk]
    if pk is None:
        pinned_where, pinned_params = pinned_sql()
        which = _NEXT_RUNNABLE + pinned_where + _NEXT_RUNNABLE_END
        which_params = [Status.QUEUED, Status.WAITING, now, *pinned_params]
    sql = (
        "UPDATE wf_instance SET "
        "status = CASE WHEN status = %s THEN %s ELSE %s END, "
        "worker_crashes = worker_crashes + CASE WHEN lease_token IS NULL THEN 0 ELSE 1 END, "
        "lease_token = %s, lease_until = %s, due_at = %s, started_at = COALESCE(started_at, %s), "
        f"updated_at = %s, deployment = %s WHERE id = {which} AND {runnable} RETURNING {_columns()}"
    )
    params = [
        Status.WAITING_FOR_PAUSE, Status.WAITING_FOR_PAUSE, Status.RUNNING,
        token, until, until, now, now, deployment(), *which_params, *runnable_params,
    ]  # fmt: skip
    if connection.vendor == "postgresql":  # the steps too, unless this is the first claim
        sql = (
            f"WITH claimed AS ({sql}) SELECT {_columns('claimed.')}, "
            f"CASE WHEN claimed.started_at = %s THEN NULL ELSE {STEPS_JSON_SQL} END AS steps_json"
            f"{'' if connection.in_atomic_block else _COMMIT_WITHOUT_FLUSH} FROM claimed"
        )
        params += [now, *STEPS_JSON_PARAMS]
        with prepared.cursor() as cursor:
            cursor.execute(sql, params)
            return _instance_from(cursor)
    taken = list(Instance.objects.raw(sql, params))
    return taken[0] if taken else None


# A claim's commit does not wait for its WAL flush (synchronous_commit off for this one
# transaction, set only when a row was claimed). Nothing depends on the claim being durable
# until this worker's next write, and that write's commit flushes the WAL up to and past the
# claim: no step starts, no result or event is recorded, before it. If the server crashes
# in between, the claim is lost with the connection, and the instance is claimable again.
# It saves one of the three WAL flushes on an event's wake-up, one of five per new instance.
_COMMIT_WITHOUT_FLUSH = ", set_config('synchronous_commit', 'off', true)"


def _columns(prefix: str = "") -> str:
    """The model's columns, named: a prepared ``RETURNING *`` would fail ("cached plan must
    not change result type") once a migration adds a column under a running worker."""
    return ", ".join(f"{prefix}{field.column}" for field in Instance._meta.concrete_fields)


def _instance_from(cursor: Any) -> Instance | None:
    """The claimed row (``_columns()``, then ``steps_json``) as an Instance (PostgreSQL: no
    backend converters apply, only the fields' own, which decode the JSON columns)."""
    row = cursor.fetchone()
    if row is None:
        return None
    fields = Instance._meta.concrete_fields
    values = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, row, strict=False)
    ]
    instance = Instance.from_db(connection.alias, [field.attname for field in fields], values)
    instance.steps_json = row[len(fields)]  # type: ignore[attr-defined]
    return instance


def _claimable_sql(now: datetime) -> tuple[str, list[Any]]:
    """``claimable()`` and ``pinned()`` as SQL for a row of wf_instance, with its parameters."""
    pinned_where, pinned_params = pinned_sql()
    sql = f"(status = %s OR (status = %s AND wake_at <= %s) OR (status IN (%s, %s) AND lease_until < %s)){pinned_where}"
    return sql, [Status.QUEUED, Status.WAITING, now, Status.RUNNING, Status.WAITING_FOR_PAUSE, now, *pinned_params]


# The oldest runnable instance nobody is claiming right now (the partial index
# wf_instance_runnable); SKIP LOCKED makes concurrent workers take different ones.
_NEXT_RUNNABLE = "(SELECT id FROM wf_instance WHERE status IN (%s, %s) AND wake_at <= %s"
_NEXT_RUNNABLE_END = " ORDER BY wake_at LIMIT 1 FOR UPDATE SKIP LOCKED)"


def pinned_sql() -> tuple[str, list[str]]:
    """``pinned()`` as an ``AND (...)`` clause for SQL written by hand, with its parameters."""
    if not conf.get("PIN_VERSIONS"):
        return "", []
    clauses, params = ["version = %s"], [""]
    for workflow, version in known_versions().items():
        clauses.append("(workflow_name = %s AND version = %s)")
        params += [workflow, version]
    return f" AND ({' OR '.join(clauses)})", params


def lease_check_sql(*, pause: bool = False) -> str:
    """A WHERE clause (two or three parameters) that holds only while the lease is ours."""
    extra = " AND pause_requested = %s" if pause else ""
    return f"EXISTS (SELECT 1 FROM wf_instance WHERE id = %s AND lease_token = %s{extra})"


def lease_lost_or_paused(lease: Lease) -> Exception:
    """Why a lease-checked write matched nothing: a pause was asked, or the lease is gone."""
    if Instance.objects.filter(pk=lease.pk, lease_token=lease.token).exists():
        return PauseRequested()
    return LeaseLost()


def fence(lease: Lease | StepLease, now: datetime, *, check_pause: bool = False) -> None:
    """Renew our lease or raise LeaseLost/PauseRequested (call inside the write's transaction).

    For a StepLease: the step must still be ours and its instance unfinished (a step in
    flight finishes even if a pause was asked; terminate and restart stop it).
    """
    until = lease_until(now)
    if isinstance(lease, StepLease):
        if not Step.objects.filter(instance_id=lease.pk, lease_token=lease.token).update(lease_until=until):
            raise LeaseLost()
        if not Instance.objects.filter(pk=lease.pk).exclude(status__in=FINISHED).exists():
            raise LeaseLost()
        return
    qs = Instance.objects.filter(pk=lease.pk, lease_token=lease.token)
    if check_pause:
        if not qs.filter(pause_requested=False).update(lease_until=until, due_at=until, updated_at=now):
            raise lease_lost_or_paused(lease)
        return
    if not qs.update(lease_until=until, due_at=until, updated_at=now):
        raise LeaseLost()


def renew(lease: Lease | StepLease, now: datetime) -> bool:
    """Heartbeat for a long step; False when the lease is gone."""
    until = lease_until(now)
    if isinstance(lease, StepLease):
        return bool(Step.objects.filter(instance_id=lease.pk, lease_token=lease.token).update(lease_until=until))
    return bool(Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(lease_until=until, due_at=until))


def claim_step(step_id: int, now: datetime, batch: int = 1) -> tuple[StepLease, Claim[StepLease], set] | None:
    """Take a queued step (or one whose worker died) to run it, plus up to ``batch - 1`` more
    queued steps of the same instance; returns (StepLease, Claim, target keys) or None.

    Only a step of an instance whose version this process's code has (``pinned``): the
    fast lanes of every deployment hear of a handed-out step."""
    token = uuid.uuid4().hex
    until = lease_until(now)
    claimable_step = Q(status=StepStatus.QUEUED, lease_token__isnull=True) | Q(
        status__in=[StepStatus.QUEUED, StepStatus.RUNNING], lease_token__isnull=False, lease_until__lt=now
    )
    # The instance's conditions are a subquery on instance_id, not a join: Django turns an
    # UPDATE with a join into "WHERE id IN (SELECT ...)", whose step conditions PostgreSQL
    # does not check again on a row another claimer changed meanwhile, so two claims of one
    # step could both succeed. Written on the step's own columns, the loser sees the
    # winner's lease token and takes nothing.
    runnable_instances = Instance.objects.filter(pinned()).exclude(status__in=FINISHED).values("pk")
    with transaction.atomic():
        taken = (
            Step.objects.filter(claimable_step, pk=step_id, instance_id__in=runnable_instances)
            .update(lease_token=token, lease_until=until)
        )  # fmt: skip
        if not taken:
            return None
        step = Step.objects.select_related("instance").get(pk=step_id)
        if batch > 1:
            # SKIP LOCKED: a step another worker is claiming at this moment is its, not ours.
            # Waiting for it instead deadlocked two claimers that each held their own step
            # and wanted the other's (PostgreSQL broke the tie after deadlock_timeout, 1 s).
            more = list(
                Step.objects.filter(instance_id=step.instance_id, status=StepStatus.QUEUED, lease_token__isnull=True)
                .exclude(pk=step_id)
                .order_by("seq")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[: batch - 1]
            )
            Step.objects.filter(pk__in=more, lease_token__isnull=True).update(lease_token=token, lease_until=until)
        record_interrupted(Step.objects.filter(lease_token=token, status=StepStatus.RUNNING), now)
        rows, max_seq = load_steps(step.instance_id, step.instance.run_number)
        targets = {key for key, row in rows.items() if row.lease_token == token}
    lease = StepLease(step_id, step.instance_id, token)
    return lease, Claim(lease, step.instance, rows, max_seq), targets


def release_steps(lease: StepLease) -> None:
    """Give back claimed steps this worker did not reach; the coordinator will run them."""
    Step.objects.filter(instance_id=lease.pk, lease_token=lease.token, status=StepStatus.QUEUED).update(
        lease_token=None, lease_until=None
    )


class Heartbeat:
    """Renews the leases of the instances this process is running, while long steps run."""

    def __init__(self) -> None:
        self.leases: dict[int, Lease | StepLease] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def track(self, lease: Lease | StepLease) -> None:
        with self.lock:
            self.leases[id(lease)] = lease
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="workflow-heartbeat", daemon=True)
                self.thread.start()

    def untrack(self, lease: Lease | StepLease) -> None:
        with self.lock:
            self.leases.pop(id(lease), None)

    def _loop(self) -> None:
        while True:
            time.sleep(max(0.5, conf.get("LEASE_SECONDS") / 4))
            with self.lock:
                leases = list(self.leases.values())
            for lease in leases:
                try:
                    renew(lease, clock.now())
                except DatabaseFailure:
                    # The next beat tries again; the lease only expires after LEASE_SECONDS.
                    log.exception("heartbeat: could not renew lease of instance %s", lease.pk)
                    close_old_connections()


heartbeat = Heartbeat()
