"""The replay loop: advance one claimed instance by running ``run()`` from the top.

``InstanceRun`` lives as long as a claim: it replays pass after pass (``ReplayPass``) until
the instance finishes, parks or is handed back. In a pass, finished steps return their
stored results; the first unfinished one executes (``engine.steps``) and its result is
committed before the next step starts, so consecutive steps run here without a queue round
trip. When ``run`` reaches something that must wait (a sleep, a retry delay, an event: see
``engine.waits``), that branch parks on a future that never resolves; in-flight steps of
other branches (``asyncio.gather``) finish and commit, and once nothing is executing the
pass ends and the instance parks until its earliest timer (``engine.parking``).

Failure handling, in order of the guarantees:
- A finished step never runs again: results are read from the claim's copy of the steps.
- One instance never advances in two workers: every write is fenced on the lease token
  (``engine.leases``); a write that finds the lease gone raises ``Abandon``.
- A killed worker loses nothing: the attempt start is committed before user code runs, so
  the next claim sees it, records it as failed, and retries it under the step's rules.
- An event is never lost or consumed twice: see ``engine.events`` and ``engine.parking``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from workflows import clock, conf, overrides, tracing
from workflows.bindings import env
from workflows.definition import lookup
from workflows.engine import approvals, divergence, parking, steps, waits
from workflows.engine.bridge import DatabaseBridge, Deferred, absorbs
from workflows.engine.context import SyncWorkflowStep, WorkflowEvent, WorkflowStep
from workflows.engine.control import Abandon, RunOutcome, Suspend, draining
from workflows.engine.leases import Lease, LeaseLost, PauseRequested, StepLease, fence
from workflows.engine.rows import Claim, StepKey
from workflows.engine.threads import call_in_thread, callback_pool
from workflows.error_records import error_record, public_error
from workflows.errors import NotSerialisable, ValueTooLarge
from workflows.lineage import CURRENT_INSTANCE
from workflows.logs import fields
from workflows.states import StepKind, StepStatus
from workflows.values import decode, encode_limited

if TYPE_CHECKING:
    from workflows.definition import Workflow
    from workflows.engine.approvals import ApprovalSpec
    from workflows.engine.fanout import FanOut

log = logging.getLogger("workflows.engine")

MAX_REPLAYS_PER_TASK = 200


class InstanceRun:
    """One claim of one instance: replays ``run()`` until there is nothing left to do now."""

    def __init__(
        self, claim: Claim[Lease] | Claim[StepLease], bridge: DatabaseBridge, *, inline_callbacks: bool = False
    ) -> None:
        self.claim = claim
        self.lease = claim.lease
        self.instance = claim.instance
        self.steps = claim.steps
        self.seq = claim.max_seq
        self.bridge = bridge
        self.db = bridge.call
        self.inline_callbacks = inline_callbacks
        self.started = time.monotonic()
        self.local_running = 0  # step.do attempts executing in this process now
        # Events found by this run's waits whose marks may not be written yet: another
        # wait running at the same time must not find them too (engine.events).
        self.found_events: dict[int, int] = {}  # event id -> the wait step's id
        self.workflow_cls = lookup(self.instance.workflow_name)
        self.overrides = overrides.load(self.instance.workflow_name, self.instance.instance_id)
        self.fanout = self._fanout()

    def _fanout(self) -> FanOut | None:
        """The coordinator that hands steps to other worker processes and waits for them."""
        from workflows.engine.fanout import FanOut

        return FanOut(self, hands_out=not self.inline_callbacks and bool(conf.get("ENQUEUE")))

    @property
    def label(self) -> str:
        return f"{self.instance.workflow_name}/{self.instance.instance_id}"

    def log_fields(self, step: str | None = None, attempt: int | None = None) -> dict:
        return fields(self.instance.workflow_name, self.instance.instance_id, step, attempt)

    # ---- what this run may do (a fan-out worker's RemoteRun says otherwise)

    dry = False  # a replay check (workflows.replay_check): reads history, writes nothing

    def executes(self, key: StepKey) -> bool:
        """Whether this run may execute step ``key`` (a fan-out worker runs only its targets)."""
        return True

    @property
    def records_waits(self) -> bool:
        """Whether sleeps and waits may be recorded and ended here (not by a fan-out worker)."""
        return True

    def should_hand_back(self) -> bool:
        """The worker is shutting down, or this instance has had its time slice."""
        return draining() or time.monotonic() - self.started > conf.get("RUN_SLICE_SECONDS")

    def new_seq(self) -> int:
        self.seq += 1
        return self.seq

    # ---- the loop

    async def main(self) -> str:
        """Replay until there is nothing left to do now; returns what happened."""
        if self.workflow_cls is None:
            message = f"no installed app defines workflow {self.instance.workflow_name!r}"
            await self.db(self.finish_error, {"name": "WorkflowNotFound", "message": message})
            return RunOutcome.ERRORED
        with tracing.segment(self) as span:
            outcome = await self._replay_until_done()
            if span is not None:
                span.set_attribute("workflow.outcome", str(outcome))
                await self.db(_remember_segment, self.lease.pk, tracing.current_parent())
        return outcome

    async def _replay_until_done(self) -> str:
        for _ in range(MAX_REPLAYS_PER_TASK):
            outcome = await self.replay_once()
            if outcome != RunOutcome.RERUN:
                return outcome
        await self.db(self.call_store, parking.hand_back, self.lease, clock.now())
        return RunOutcome.HANDED_BACK

    async def replay_once(self) -> str:
        replay = ReplayPass(self, asyncio.get_running_loop())
        outcome, value = await replay.execute()
        try:
            return await self.conclude(replay, outcome, value)
        except (Abandon, LeaseLost):  # LeaseLost: a deferred step result found the lease gone
            return RunOutcome.ABANDONED

    async def conclude(self, replay: ReplayPass, outcome: str, value: Any) -> str:
        """Write what the pass led to; "rerun" when an event arrived while parking."""
        now = clock.now()
        if outcome == "abandon":
            log.info("%s: lease lost (terminated, restarted or taken over); stopping", self.label, **self.log_fields())
            return RunOutcome.ABANDONED
        if outcome == "complete" or (outcome == "suspend" and value == "park"):
            divergence.check_unvisited(replay)
        if replay.divergence is not None:
            await self.db(divergence.record, self, replay.divergence)
        if replay.fatal is not None:
            await self.db(self.finish_error, replay.fatal)
            return RunOutcome.ERRORED
        if outcome == "complete":
            return await self._complete(value, now)
        if outcome == "error":
            log.info("%s: errored: %s: %s", self.label, type(value).__name__, value, **self.log_fields())
            await self.db(self.finish_error, public_error(error_record(value)))
            return RunOutcome.ERRORED
        if value == "handback":
            await self.db(self.call_store, parking.hand_back, self.lease, now)
            return RunOutcome.HANDED_BACK
        parked = await self.db(self.call_store, parking.park, self.lease, now)
        if not parked:
            return RunOutcome.RERUN
        return RunOutcome.PAUSED if value == "pause" else RunOutcome.PARKED

    async def _complete(self, value: Any, now: datetime) -> RunOutcome:
        try:
            text = encode_limited(value, what="the value returned by run()", limit=conf.get("MAX_VALUE_BYTES"))
        except (NotSerialisable, ValueTooLarge) as exc:
            await self.db(self.finish_error, public_error(error_record(exc)))
            return RunOutcome.ERRORED
        await self.db(
            self.call_store_absorbing, parking.finish, self.lease, now, output_text=text,
            open_approvals=self.open_approvals(), workflow=self.instance.workflow_name,
        )  # fmt: skip
        log.info("%s: complete", self.label, **self.log_fields())
        return RunOutcome.COMPLETE

    def finish_error(self, error: dict) -> None:
        self.call_store(
            parking.finish, self.lease, clock.now(), error=error, open_approvals=self.open_approvals(),
            workflow=self.instance.workflow_name,
        )  # fmt: skip

    def open_approvals(self) -> bool:
        """Whether an approval step still waits (its request is then cancelled as the instance ends)."""
        return any(row.kind == StepKind.APPROVAL and row.status == StepStatus.WAITING for row in self.steps.values())

    @staticmethod
    @absorbs
    def call_store_absorbing(fn: Callable, *args: Any, deferred: Deferred | None = None, **kwargs: Any) -> Any:
        """``call_store`` for a write that takes the deferred step result along (``engine.bridge``)."""
        return InstanceRun.call_store(fn, *args, deferred=deferred, **kwargs)

    @staticmethod
    def call_store(fn: Callable, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LeaseLost:
            raise Abandon() from None


class ReplayPass:
    """One pass of ``run()`` from the top, with the bookkeeping that lives only that long."""

    def __init__(self, run: InstanceRun, loop: asyncio.AbstractEventLoop) -> None:
        self.run = run
        self.counters: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.do_calls = 0
        self.stop_reason: str | None = None
        self.fatal: dict | None = None  # set by a misuse that errors the instance at the end of the pass
        self.busy = 0  # branches executing an engine call now
        self.parked = 0  # branches waiting for a timer or an event
        self.idle = asyncio.Event()
        self.idle.set()
        self.never = loop.create_future()  # what a parked branch awaits
        self.quiet = loop.create_future()  # resolved once every branch is parked or done
        # Not None: InstanceRun.main errors the instance of an unregistered workflow before any pass.
        self.workflow_cls = cast("type[Workflow]", run.workflow_cls)
        self.async_run = self.workflow_cls.is_async()
        # Divergence between the code and the recorded history (engine.divergence).
        self.history = {key for key in run.steps if key[0] != StepKind.PATCH}
        self.visited: set[StepKey] = set()
        self.recorded_left = len(self.history)  # recorded steps not asked for yet in this pass
        self.tasks_seen: set[Any] = set()
        self.went_new: dict[Any, StepKey] = {}  # per branch: the first step it asked for that history lacks
        self.divergence: dict[str, Any] | None = None

    async def execute(self) -> tuple[str, Any]:
        """Run ``run()``: ("complete", output), ("error", exc), ("suspend", reason) or ("abandon", None).

        Pause, hand-back and fatal errors stop the pass: steps in flight finish and commit,
        and no new step starts.
        """
        run_task = self._start_user_run()
        await asyncio.wait({run_task, self.quiet}, return_when=asyncio.FIRST_COMPLETED)
        if not run_task.done():
            run_task.cancel()
            with contextlib.suppress(BaseException):  # whatever run() does while cancelled is moot
                await run_task
            outcome, value = "suspend", "park"
        else:
            outcome, value = _result_of(run_task)
        # Steps still running in other branches (gather) finish and commit first.
        self.stop_reason = self.stop_reason or "finishing"
        await self.idle.wait()
        self.never.cancel()
        if outcome == "suspend" and self.stop_reason in ("pause", "handback"):
            value = self.stop_reason
        return outcome, value

    def _start_user_run(self) -> asyncio.Future:
        instance = self.run.instance
        event = WorkflowEvent(
            decode(instance.params),
            instance.instance_id,
            instance.workflow_name,
            instance.created_at,
            instance.schedule,
        )
        CURRENT_INSTANCE.set((instance.workflow_name, instance.instance_id))
        workflow = self.workflow_cls()
        workflow.env = env
        step = WorkflowStep(self)
        if self.async_run:
            return asyncio.ensure_future(workflow.run(event, step))
        loop = asyncio.get_running_loop()
        sync_step = SyncWorkflowStep(step, loop)
        context = contextvars.copy_context()
        return asyncio.ensure_future(
            loop.run_in_executor(callback_pool, context.run, call_in_thread, workflow.run, (event, sync_step))
        )

    # ---- the step API (WorkflowStep calls these)

    async def do(self, name: str, fn: Callable, retries: dict | None, timeout: Any) -> Any:
        return await steps.run_do(self, name, fn, retries, timeout)

    async def sleep(self, name: str, wake_for: Callable) -> None:
        return await waits.sleep(self, name, wake_for)

    async def wait_for_event(self, name: str, event_type: str, timeout_seconds: float) -> dict:
        return await waits.wait_for_event(self, name, event_type, timeout_seconds)

    async def wait_for_approval(self, name: str, spec: ApprovalSpec) -> dict:
        return await approvals.wait_for_approval(self, name, spec)

    async def set_attributes(self, values: dict[str, Any]) -> None:
        """Write search attributes, fenced by the lease (a replay writes the same values again)."""
        self.may_start_new_work()
        await self.store(_write_attributes, self.run.lease, values)

    # ---- bookkeeping shared by the step kinds

    def next_key(self, kind: str, name: str) -> StepKey:
        self.counters[(kind, name)] += 1
        key = (kind, name, self.counters[(kind, name)])
        self.visited.add(key)
        if kind != StepKind.PATCH and self.history:
            divergence.check_step(self, key)
        return key

    async def patched(self, patch_id: str) -> bool:
        return await divergence.patched(self, patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        divergence.deprecate_patch(self, patch_id)

    def may_start_new_work(self) -> None:
        """Called before anything new is written: refuse once this pass is ending."""
        if self.run.dry:
            self.stop("frontier")  # a replay check reached what would run now: nothing is written
        if self.stop_reason is not None:
            raise Suspend(self.stop_reason)
        if self.run.should_hand_back():
            self.stop("handback")

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        raise Suspend(reason)

    async def park(self) -> None:
        """This branch has to wait; the instance parks once every branch waits or is done."""
        if not self.async_run:
            self.stop("park")
        self.parked += 1
        self._check_quiet()
        await self.never

    def _check_quiet(self, rounds: int = 6) -> None:
        # A few loop turns let branches that were just woken reach their next engine call.
        if self.busy or not self.parked or self.quiet.done():
            return
        if rounds:
            asyncio.get_running_loop().call_soon(self._check_quiet, rounds - 1)
        else:
            self.quiet.set_result(None)

    def enter(self) -> None:
        self.busy += 1
        self.idle.clear()

    def leave(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self.idle.set()
            self._check_quiet()

    async def store(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run a fenced write on the database thread; a lost lease abandons, a pause stops the pass."""
        if self.run.dry:
            self.stop("frontier")
        self.enter()
        try:
            return await self.run.db(fn, *args, **kwargs)
        except LeaseLost:
            self.stop_reason = "abandon"
            raise Abandon() from None
        except PauseRequested:
            self.stop("pause")
        finally:
            self.leave()


def _result_of(run_task: asyncio.Future) -> tuple[str, Any]:
    try:
        return "complete", run_task.result()
    except Suspend as suspend:
        return "suspend", suspend.reason
    except Abandon:
        return "abandon", None
    except asyncio.CancelledError:
        return "suspend", "park"
    except Exception as exc:  # noqa: BLE001 (run() raised: the instance errors with it)
        return "error", exc


def _write_attributes(lease: Lease, values: dict[str, Any]) -> None:
    from django.db import transaction

    from workflows.attributes import set_values

    with transaction.atomic():
        fence(lease, clock.now())
        set_values(lease.pk, values)


def _remember_segment(pk: int, traceparent: str) -> None:
    """The segment's span, for the next segment of the instance to link to (tracing only)."""
    from workflows.models import Instance

    Instance.objects.filter(pk=pk).update(last_span=traceparent)
