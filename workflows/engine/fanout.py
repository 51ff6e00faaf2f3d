"""Fan-out across worker processes: steps of one instance run by several workers at once.

When an ``asyncio.gather`` has more steps running than ``LOCAL_STEP_CONCURRENCY``, the
coordinating worker (the one holding the instance's lease) hands the extra steps out: the
step row says "queued" and a ``run_step`` kick goes to django-q2 (``queue_remote_steps``;
the steps a gather hands out at one moment are queued in one transaction), and on
PostgreSQL the fast lanes are notified. Another worker (a worker process, or a fast-lane
runner) claims the step, with up to ``LOCAL_STEP_CONCURRENCY`` queued ones of the same
instance, under a step lease (``leases.claim_step``) and runs them with a
``RemoteRun`` (``engine.remote``): a replay that executes only its claimed steps and writes nothing else.
The coordinator watches the handed-out steps with one query per tick (``FanOut``): finished
ones wake their branch, ones nobody claimed within ``STEAL_AFTER_SECONDS`` are taken back
when a local slot is free, and ones whose worker died are queued again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction

from workflows import clock, conf
from workflows.engine.control import Abandon, Suspend
from workflows.engine.leases import Lease, StepTaken, fence
from workflows.engine.rows import StepKey, StepRow
from workflows.error_records import rebuild_error
from workflows.history import record_interrupted
from workflows.models import Step
from workflows.states import StepStatus
from workflows.timers import kick_step
from workflows.validation import storable_config
from workflows.values import decode

if TYPE_CHECKING:
    from workflows.engine.replay import InstanceRun, ReplayPass
    from workflows.engine.steps import StepCall

log = logging.getLogger("workflows.engine")

DONE = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.RETRYING)

# A step to hand out: its key, its row (None if never started), its seq and its config.
Handout = tuple[StepKey, StepRow | None, int, dict]


class FanOut:
    """The coordinator's side: hand steps out, watch them, take unclaimed ones back."""

    def __init__(self, run: InstanceRun, *, hands_out: bool) -> None:
        self.run = run
        self.hands_out = hands_out  # False in in-process test runs: every step runs here
        self.waiters: dict[int, asyncio.Future] = {}
        self.queued_at: dict[int, float] = {}  # when each step was handed out (monotonic)
        self.watcher: asyncio.Future | None = None
        self.handing_out: list[tuple[Handout, asyncio.Future[StepRow]]] = []  # joining one transaction
        self.queued: asyncio.Future[None] | None = None  # done once that transaction is

    def should_delegate(self, row: StepRow | None) -> bool:
        """Wait for a step handed out earlier, or hand this one out when local slots are full."""
        if row is not None and (row.status == StepStatus.QUEUED or row.lease_token):
            return True
        return self.hands_out and self.run.local_running >= conf.get("LOCAL_STEP_CONCURRENCY")

    async def delegate(self, call: StepCall) -> Any:
        """Hand the step to another worker and wait; run it here instead if a local slot frees first."""
        replay, row = call.replay, call.row
        if row is None or (row.status not in (StepStatus.QUEUED, StepStatus.RUNNING) and not row.lease_token):
            replay.may_start_new_work()
            seq = row.seq if row is not None else self.run.new_seq()
            row = await self._hand_out(replay, (call.key, row, seq, storable_config(call.config)))
            self.run.steps[call.key] = call.row = row
        self.queued_at.setdefault(row.id, time.monotonic())
        while True:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[row.id] = waiter
            if self.watcher is None:
                self.watcher = asyncio.ensure_future(self._watch(replay))
            outcome, state = await waiter
            if outcome == "steal":
                try:
                    return await call.run_local(steal=True)
                except StepTaken:
                    continue
            return await self._finished_elsewhere(call, row, state)

    async def _hand_out(self, replay: ReplayPass, handout: Handout) -> StepRow:
        """Queue the step for another worker, in one transaction with the other steps this
        gather hands out at the same moment: the first worker to claim then finds them all
        and takes them as one batch. Queued one by one (a transaction each, a few ms apart
        while the local steps hold the GIL), the first claimer took only the first few, and
        the rest waited for a worker process to come free."""
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[StepRow] = loop.create_future()
        self.handing_out.append((handout, mine))
        if len(self.handing_out) > 1:
            return await mine
        queued = self.queued = loop.create_future()
        batch: list[tuple[Handout, asyncio.Future[StepRow]]] = []
        try:
            await asyncio.sleep(0)  # the gather's other branches join meanwhile
            batch, self.handing_out = self.handing_out, []
            rows = await replay.store(queue_remote_steps, self.run.lease, [h for h, _ in batch], clock.now())
        except BaseException as exc:  # Abandon, Suspend, an error: every branch of the batch sees it
            if not batch:  # stopped before taking it; once taken, later joiners are the next batch's
                batch, self.handing_out = self.handing_out, []
            for _, waiter in batch:
                if waiter is mine or waiter.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    waiter.cancel()
                else:
                    waiter.set_exception(exc)
            raise
        finally:
            queued.set_result(None)
            if self.queued is queued:
                self.queued = None
        for (_, waiter), stored in zip(batch, rows, strict=True):
            if waiter is not mine and not waiter.done():
                waiter.set_result(stored)
        return rows[0]

    async def settled(self) -> None:
        """Wait until the steps being handed out at this moment are queued. A local step's
        callback starts after this: a CPU-bound one holds the GIL, and the transaction that
        queues the others, a dozen statements that each take the GIL back, then took a second
        in the fan-out bench before any other worker could see a step."""
        if self.queued is not None:
            await asyncio.wait([self.queued])

    async def _finished_elsewhere(self, call: StepCall, row: StepRow, state: dict) -> Any:
        row.status, row.attempts, row.wake_at, row.lease_token = (
            state["status"], state["attempts"], state["wake_at"], None,
        )  # fmt: skip
        if state["status"] == StepStatus.SUCCEEDED:
            row.result = state["result"]
            return decode(row.result)
        if state["status"] == StepStatus.FAILED:
            row.error = state["error"]
            raise rebuild_error(state["error"])
        return await call.wait_for_retry()  # RETRYING: park until its delay is over

    async def _watch(self, replay: ReplayPass) -> None:
        """One query per tick for every handed-out step: finished ones wake their branch, queued
        ones are taken back when a local slot is free, those of dead workers are re-queued."""
        try:
            while self.waiters:
                await asyncio.sleep(conf.get("FANOUT_POLL_SECONDS"))
                states = await replay.store(watch_steps, self.run.lease, list(self.waiters), clock.now())
                self._wake(states)
        except (Abandon, Suspend) as exc:
            self._fail_waiters(exc)
        except asyncio.CancelledError:
            self._fail_waiters(Abandon())
        except Exception:
            # A database error or a bug: the branches cannot know how their steps ended, so
            # the instance is abandoned; its lease expires and another claim carries on.
            log.exception("%s: watching handed-out steps failed; abandoning this run", self.run.label)
            self._fail_waiters(Abandon())
        finally:
            self.watcher = None

    def _wake(self, states: dict[int, dict]) -> None:
        free = conf.get("LOCAL_STEP_CONCURRENCY") - self.run.local_running
        steal_after = conf.get("STEAL_AFTER_SECONDS")
        for step_id, state in states.items():
            waiter = self.waiters.get(step_id)
            if waiter is None:
                continue
            if state["status"] in DONE:
                del self.waiters[step_id]
                waiter.set_result(("done", state))
            elif (
                state["status"] == StepStatus.QUEUED
                and not state["lease_token"]
                and free > 0
                # Give the other workers a moment to claim it before taking it back.
                and time.monotonic() - self.queued_at.get(step_id, 0) >= steal_after
            ):
                del self.waiters[step_id]
                waiter.set_result(("steal", state))
                free -= 1

    def _fail_waiters(self, exc: BaseException) -> None:
        for waiter in self.waiters.values():
            if not waiter.done():
                waiter.set_exception(exc)
        self.waiters.clear()


def queue_remote_steps(lease: Lease, handouts: list[Handout], now: datetime) -> list[StepRow]:
    """Hand steps to other workers, in one transaction: each step row says "queued" and a
    run_step kick goes out for it.

    The fast lanes hear of the first step of every ``LOCAL_STEP_CONCURRENCY``: its claimer
    takes the next ones along as a batch. Told of every step, two runners raced for one
    batch and split it, and the second one's claim then waited for the GIL behind the
    first one's CPU-bound step."""
    rows = []
    batch = conf.get("LOCAL_STEP_CONCURRENCY")
    with transaction.atomic():
        fence(lease, now, check_pause=True)
        for i, ((kind, name, occurrence), row, seq, config) in enumerate(handouts):
            if row is None:
                step = Step.objects.create(
                    instance_id=lease.pk, run_number=lease.run_number, kind=kind, name=name, occurrence=occurrence,
                    seq=seq, status=StepStatus.QUEUED, config=config, attempts=0, started_at=now,
                )  # fmt: skip
                row = StepRow(step.id, kind, name, occurrence, seq, StepStatus.QUEUED, config=config)
            else:
                Step.objects.filter(pk=row.id).update(status=StepStatus.QUEUED, wake_at=None, lease_token=None)
                row.status, row.wake_at = StepStatus.QUEUED, None
            kick_step(row.id, tell_fast_lanes=i % batch == 0)
            rows.append(row)
    return rows


def watch_steps(lease: Lease, step_ids: list[int], now: datetime) -> dict[int, dict]:
    """The coordinator's view of the steps it handed out; re-queues those whose worker died."""
    fields = ("id", "status", "result", "error", "attempts", "wake_at", "lease_token", "lease_until")
    with transaction.atomic():
        fence(lease, now)
        rows = {r["id"]: r for r in Step.objects.filter(pk__in=step_ids).values(*fields)}
        for step_id, r in rows.items():
            dead = r["lease_token"] and r["lease_until"] and r["lease_until"] < now
            if dead and r["status"] in (StepStatus.QUEUED, StepStatus.RUNNING):
                record_interrupted(Step.objects.filter(pk=step_id, status=StepStatus.RUNNING), now)
                Step.objects.filter(pk=step_id, lease_token=r["lease_token"]).update(
                    status=StepStatus.QUEUED, lease_token=None, lease_until=None
                )
                r["status"], r["lease_token"] = StepStatus.QUEUED, None
                kick_step(step_id)
    return rows
