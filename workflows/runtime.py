"""The replay engine: advance one instance by running ``run()`` from the top.

``advance(pk)`` claims the instance, then replays ``run(event, step)``. Finished steps
return their stored results; the first unfinished one executes, and its result is committed
before the next step starts. Consecutive steps run here without a queue round-trip. When
``run`` reaches something that must wait (a sleep, a retry delay, an event), the step raises
``Suspend``; in-flight steps of the same instance (``asyncio.gather``) finish and commit, and
the instance is parked until its earliest timer. Nothing blocks a worker while it waits.

Failure handling, in order of the guarantees:
- A finished step never runs again: results are read from the claim's copy of the steps.
- One instance never advances in two workers: every write is fenced on the lease token.
- A killed worker loses nothing: the attempt start is committed before user code runs, so
  the next claim sees it, records it as failed, and retries it under the step's rules.
- An event is never lost or consumed twice: see ``store.receive_event`` and ``store.park``.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import functools
import inspect
import logging
import pydoc
import threading
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from django.db import close_old_connections

from workflows import clock, conf, overrides, store
from workflows.bindings import env
from workflows.bridge import DatabaseBridge
from workflows.definition import lookup
from workflows.durations import MAX_SLEEP_SECONDS, parse_bounded, parse_duration
from workflows.errors import (
    NonRetryableDelayError,
    NonRetryableError,
    NotSerialisable,
    ValueTooLarge,
    WorkflowFatalError,
    WorkflowInternalError,
    WorkflowTimeoutError,
)
from workflows.logs import fields
from workflows.models import StepKind, StepStatus
from workflows.validation import (
    check_event_type,
    check_step_name,
    resolve_step_config,
    retry_wait,
    storable_config,
)
from workflows.values import decode, encode_limited, freeze

log = logging.getLogger("workflows.engine")

# A shared byte set up by `manage.py workflows worker` before it forks the worker processes;
# when it is 1, a worker hands its instance back at the next step boundary (graceful
# shutdown). Lock-free on purpose: a child killed while holding a lock would deadlock stop.
DRAIN_FLAG = None

# Plain-function step callbacks and def-style run() methods run here, so they can use the
# ORM and so several steps of one instance can run at once (fan-out with gather).
_callback_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="workflow-step")
_MAX_REPLAYS_PER_TASK = 200


# (workflow name, instance id) of the instance whose replay is running in this context, so
# that an instance created inside a step records its parent.
CURRENT_INSTANCE: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("workflows_current_instance", default=None)


class Suspend(BaseException):
    """Stop this replay. A BaseException so user code's ``except Exception`` cannot swallow it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "park" | "pause" | "handback" | why new work was refused


class _AttemptTimedOut(Exception):
    """The attempt ran past its timeout (distinct from a TimeoutError the callback raised)."""


class Abandon(BaseException):
    """The lease is gone (terminated, restarted, taken over): stop without writing anything."""


# --------------------------------------------------------------------------- errors


def error_record(exc: BaseException) -> dict:
    """How an exception is stored: its class name (decision 4), message, and how to rebuild it."""
    cls = type(exc)
    record = {
        "name": getattr(exc, "error_name", None) or cls.__name__,
        "message": str(exc),
        "module": cls.__module__,
        "qualname": cls.__qualname__,
    }
    try:
        record["args"] = encode_limited(list(exc.args), what="error args", limit=64 * 1024)
    except Exception:
        pass
    return record


class StepError(Exception):
    """Stands in for a stored step error whose original class cannot be rebuilt."""


def rebuild_error(record: dict) -> BaseException:
    """The stored error as an exception of its original class where that is possible.

    The rebuilt exception must print as the original did; otherwise a ``StepError`` that
    keeps the original name and message stands in, so replays behave the same every time.
    """
    name, message = record.get("name", "Error"), record.get("message", "")
    cls = pydoc.locate(f"{record.get('module')}.{record.get('qualname')}") if record.get("module") else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        args = (message,)
        with contextlib.suppress(Exception):
            if "args" in record:
                args = tuple(decode(record["args"]))
        for build in (lambda: cls(*args), lambda: _bare(cls, args)):
            try:
                exc = build()
                if str(exc) == message:
                    if name != cls.__name__:
                        exc.error_name = name
                    return exc
            except Exception:
                continue
    exc = StepError(message)
    exc.error_name = name
    return exc


def _bare(cls, args):
    exc = cls.__new__(cls)
    exc.args = args
    return exc


def public_error(record: dict) -> dict:
    return {"name": record["name"], "message": record["message"]}


# --------------------------------------------------------------------------- context objects


class WorkflowEvent:
    """The first argument of run(): read-only params and who/when this instance is."""

    __slots__ = ("_payload", "instance_id", "workflow_name", "timestamp", "schedule")

    def __init__(self, payload, instance_id: str, workflow_name: str, timestamp: datetime, schedule: dict | None = None):
        self._payload = freeze(payload)
        self.instance_id = instance_id
        self.workflow_name = workflow_name
        self.timestamp = timestamp
        self.schedule = freeze(schedule)

    @property
    def payload(self):
        return self._payload

    def __repr__(self):
        return f"<WorkflowEvent {self.workflow_name}/{self.instance_id}>"


class StepContext:
    """The optional argument of a step callback: ``ctx.attempt``, ``ctx.step.name/count``, ``ctx.config``."""

    def __init__(self, name: str, count: int, attempt: int, config: dict):
        self.step = SimpleNamespace(name=name, count=count)
        self.attempt = attempt
        self.config = config  # a fresh copy (storable_config): changing it changes nothing

    def __repr__(self):
        return f"<StepContext {self.step.name}-{self.step.count} attempt {self.attempt}>"


@functools.lru_cache(maxsize=4096)
def _takes_argument(fn) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    # A parameter with a default (``def add(i=i)``, the loop-closure idiom) is not asking for ctx.
    return any(
        p.kind == p.VAR_POSITIONAL or (p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)
        for p in parameters
    )


def _takes_ctx(fn) -> bool:
    try:
        return _takes_argument(fn)
    except TypeError:  # unhashable callable
        return _takes_argument.__wrapped__(fn)


def _in_savepoint(fn, *args):
    from django.db import transaction

    with transaction.atomic():
        return fn(*args)


def _call_in_thread(fn, args):
    try:
        return fn(*args)
    finally:
        close_old_connections()


# --------------------------------------------------------------------------- the step API


class WorkflowStep:
    """The second argument of an ``async def run``: ``do``, ``sleep``, ``sleep_until``, ``wait_for_event``."""

    def __init__(self, runner: Runner):
        self._runner = runner

    async def do(self, name, fn, *, retries=None, timeout=None):
        return await self._runner.do(name, fn, retries, timeout)

    async def sleep(self, name, duration):
        seconds = parse_bounded(duration, what="sleep duration", maximum=MAX_SLEEP_SECONDS)
        return await self._runner.sleep(name, lambda now: now + timedelta(seconds=seconds))

    async def sleep_until(self, name, when):
        if isinstance(when, datetime):
            target = when if when.tzinfo else when.replace(tzinfo=UTC)
        elif isinstance(when, (int, float)) and not isinstance(when, bool):
            target = datetime.fromtimestamp(when, tz=UTC)
        else:
            raise ValueError(f"invalid sleep_until time {when!r}: expected a datetime or seconds since the epoch")

        def wake(now):
            if (target - now).total_seconds() > MAX_SLEEP_SECONDS:
                raise ValueError(f"invalid sleep_until time {when!r}: more than 365 days ahead")
            return target

        return await self._runner.sleep(name, wake)

    async def wait_for_event(self, name, *, type, timeout="24 hours"):
        check_event_type(type)
        seconds = parse_bounded(timeout, what="wait_for_event timeout", minimum=1, maximum=MAX_SLEEP_SECONDS)
        return await self._runner.wait_for_event(name, type, seconds)


class SyncWorkflowStep:
    """The step API for a ``def run``: the same operations, blocking until each is done."""

    def __init__(self, step: WorkflowStep, loop):
        self._step = step
        self._loop = loop

    def _wait(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def do(self, name, fn, *, retries=None, timeout=None):
        return self._wait(self._step.do(name, fn, retries=retries, timeout=timeout))

    def sleep(self, name, duration):
        return self._wait(self._step.sleep(name, duration))

    def sleep_until(self, name, when):
        return self._wait(self._step.sleep_until(name, when))

    def wait_for_event(self, name, *, type, timeout="24 hours"):
        return self._wait(self._step.wait_for_event(name, type=type, timeout=timeout))


# --------------------------------------------------------------------------- the runner


class Runner:
    """Replays one claimed instance until it finishes, parks, or is handed back."""

    def __init__(self, claim: store.Claim, bridge: DatabaseBridge, *, inline_callbacks: bool = False, target_keys=None):
        self.inline_callbacks = inline_callbacks
        self.bridge = bridge
        # Remote mode (fan-out): replay only to run these steps for the instance's coordinator.
        self.target_keys = set(target_keys or ())
        self.remote = bool(self.target_keys)
        self.local_running = 0
        self.remote_waiters: dict[int, asyncio.Future] = {}
        self.queued_at: dict[int, float] = {}  # when each step was handed out (monotonic)
        self.watcher = None
        self.claim = claim
        self.lease = claim.lease
        self.instance = claim.instance
        self.steps = claim.steps
        self.seq = claim.max_seq
        self.db = bridge.call
        self.started = time.monotonic()
        self.workflow_cls = lookup(self.instance.workflow_name)
        self.overrides = overrides.load(self.instance.workflow_name, self.instance.instance_id)

    @property
    def label(self) -> str:
        return f"{self.instance.workflow_name}/{self.instance.instance_id}"

    def _log(self, step: str | None = None, attempt: int | None = None) -> dict:
        return fields(self.instance.workflow_name, self.instance.instance_id, step, attempt)

    # ---- replay loop

    async def main(self) -> str:
        """Replay until there is nothing left to do now; returns what happened."""
        if self.workflow_cls is None:
            await self.db(self._finish_error, {"name": "WorkflowNotFound", "message": f"no installed app defines workflow {self.instance.workflow_name!r}"})
            return "errored"
        for _ in range(_MAX_REPLAYS_PER_TASK):
            outcome = await self.replay()
            if outcome != "rerun":
                return outcome
        await self.db(self._call_store, store.hand_back, self.lease, clock.now())
        return "handed back"

    async def replay(self) -> str:
        """One pass of run() from the top; returns "rerun" when another pass is needed now.

        A branch that must wait (sleep, retry delay, event) parks on a future that never
        resolves instead of raising, so other branches of an ``asyncio.gather`` keep going.
        Once nothing is executing and at least one branch is parked, run() is cancelled and
        the instance parks until its earliest timer. Pause, hand-back and fatal errors stop
        the pass instead: steps in flight finish and commit, and no new step starts.
        """
        loop = asyncio.get_running_loop()
        self.counters = defaultdict(int)
        self.do_calls = 0
        self.stop_reason: str | None = None
        self.fatal: dict | None = None
        self.busy = 0
        self.parked = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.never = loop.create_future()
        self.quiet = loop.create_future()
        self.async_run = self.workflow_cls.is_async()

        event = WorkflowEvent(
            decode(self.instance.params), self.instance.instance_id, self.instance.workflow_name,
            self.instance.created_at, self.instance.schedule,
        )
        CURRENT_INSTANCE.set((self.instance.workflow_name, self.instance.instance_id))
        workflow = self.workflow_cls()
        workflow.env = env
        step = WorkflowStep(self)
        if self.async_run:
            run_task = asyncio.ensure_future(workflow.run(event, step))
        else:
            run_task = asyncio.ensure_future(loop.run_in_executor(
                _callback_pool, contextvars.copy_context().run, _call_in_thread, workflow.run, (event, SyncWorkflowStep(step, loop))
            ))
        await asyncio.wait({run_task, self.quiet}, return_when=asyncio.FIRST_COMPLETED)
        if not run_task.done():
            run_task.cancel()
            with contextlib.suppress(BaseException):
                await run_task
            outcome, value = "suspend", "park"
        else:
            try:
                outcome, value = "complete", run_task.result()
            except Suspend as suspend:
                outcome, value = "suspend", suspend.reason
            except Abandon:
                outcome, value = "abandon", None
            except asyncio.CancelledError:
                outcome, value = "suspend", "park"
            except Exception as exc:
                outcome, value = "error", exc
        # Steps still running in other branches (gather) finish and commit first.
        self.stop_reason = self.stop_reason or "finishing"
        await self.idle.wait()
        self.never.cancel()
        if outcome == "suspend" and self.stop_reason in ("pause", "handback"):
            value = self.stop_reason
        try:
            return await self._conclude(outcome, value)
        except Abandon:
            return "abandoned"

    async def run_target(self) -> str:
        """Remote mode: one replay that runs the target step; the instance itself is not touched."""
        return await self.replay()

    async def _conclude(self, outcome: str, value) -> str:
        now = clock.now()
        if self.remote:
            if any(self.steps[key].status == StepStatus.QUEUED for key in self.target_keys):
                await self.db(store.release_steps, self.lease)
            return ", ".join(sorted(f"{key[1]}: {self.steps[key].status}" for key in self.target_keys))
        if outcome == "abandon":
            log.info("%s: lease lost (terminated, restarted or taken over); stopping", self.label, **self._log())
            return "abandoned"
        if self.fatal is not None:
            await self.db(self._finish_error, self.fatal)
            return "errored"
        if outcome == "complete":
            try:
                text = encode_limited(value, what="the value returned by run()", limit=conf.get("MAX_VALUE_BYTES"))
            except (NotSerialisable, ValueTooLarge) as exc:
                await self.db(self._finish_error, public_error(error_record(exc)))
                return "errored"
            await self.db(self._call_store, store.finish, self.lease, now, output_text=text)
            log.info("%s: complete", self.label, **self._log())
            return "complete"
        if outcome == "error":
            log.info("%s: errored: %s: %s", self.label, type(value).__name__, value, **self._log())
            await self.db(self._finish_error, public_error(error_record(value)))
            return "errored"
        reason = value
        if reason == "handback":
            await self.db(self._call_store, store.hand_back, self.lease, now)
            return "handed back"
        parked = await self.db(self._call_store, store.park, self.lease, now)
        return ("paused" if reason == "pause" else "parked") if parked else "rerun"

    def _finish_error(self, error: dict):
        return self._call_store(store.finish, self.lease, clock.now(), error=error)

    @staticmethod
    def _call_store(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except store.LeaseLost:
            raise Abandon() from None

    # ---- bookkeeping shared by the step kinds

    def _next_key(self, kind: str, name: str):
        self.counters[(kind, name)] += 1
        return (kind, name, self.counters[(kind, name)])

    def _may_start_new_work(self):
        """Called before anything new is written: refuse once this pass is ending."""
        if self.stop_reason is not None:
            raise Suspend(self.stop_reason)
        if self.remote:
            return
        if DRAIN_FLAG is not None and DRAIN_FLAG.value:
            self._stop("handback")
        if time.monotonic() - self.started > conf.get("RUN_SLICE_SECONDS"):
            self._stop("handback")

    def _stop(self, reason: str):
        self.stop_reason = self.stop_reason or reason
        raise Suspend(reason)

    async def _park(self):
        """This branch has to wait; the instance parks once every branch waits or is done."""
        if not self.async_run:
            self._stop("park")
        self.parked += 1
        self._check_quiet()
        await self.never

    def _check_quiet(self, rounds: int = 6):
        # A few loop turns let branches that were just woken reach their next engine call.
        if self.busy or not self.parked or self.quiet.done():
            return
        if rounds:
            asyncio.get_running_loop().call_soon(self._check_quiet, rounds - 1)
        else:
            self.quiet.set_result(None)

    def _enter(self):
        self.busy += 1
        self.idle.clear()

    def _leave(self):
        self.busy -= 1
        if self.busy == 0:
            self.idle.set()
            self._check_quiet()

    def _new_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def _store(self, fn, *args, **kwargs):
        self._enter()
        try:
            return await self.db(fn, *args, **kwargs)
        except store.LeaseLost:
            self.stop_reason = "abandon"
            raise Abandon() from None
        except store.PauseRequested:
            self._stop("pause")
        finally:
            self._leave()

    # ---- step.do

    async def do(self, name, fn, retries, timeout):
        check_step_name(name)
        if not callable(fn):
            raise WorkflowFatalError(f'Step "{name}" requires a callback function, got {type(fn).__name__}')
        self.do_calls += 1
        limit = conf.get("STEP_LIMIT")
        if self.do_calls > limit:
            raise WorkflowFatalError(
                f"The limit of {limit} steps has been reached. This limit can be changed with WORKFLOWS['STEP_LIMIT']."
            )
        key = self._next_key(StepKind.DO, name)
        row = self.steps.get(key)
        if row is not None and row.status == StepStatus.SUCCEEDED:
            return decode(row.result)
        if row is not None and row.status == StepStatus.FAILED:
            raise rebuild_error(row.error)
        config = self._config(name, row, retries, timeout)
        if self.remote and key not in self.target_keys:
            await self._park()  # a fan-out worker runs its claimed steps, nothing else
        if row is not None and row.status == StepStatus.RETRYING and row.wake_at > clock.now():
            await self._park()
        self._enter()
        try:
            if not self.remote and row is not None and (row.status == StepStatus.QUEUED or row.lease_token):
                return await self._delegate(key, row, config, fn)  # handed out earlier: wait for it
            if self._can_delegate() and self.local_running >= conf.get("LOCAL_STEP_CONCURRENCY"):
                return await self._delegate(key, row, config, fn)
            return await self._run_local(key, row, config, fn)
        finally:
            self._leave()

    # ---- fan-out across worker processes

    def _can_delegate(self) -> bool:
        return not self.remote and not self.inline_callbacks and bool(conf.get("ENQUEUE"))

    async def _run_local(self, key, row, config, fn, *, steal: bool = False):
        self.local_running += 1
        try:
            return await self._execute(key, row, config, fn, steal=steal)
        finally:
            self.local_running -= 1

    async def _delegate(self, key, row, config, fn):
        """Hand the step to another worker and wait; run it here instead if a local slot frees first."""
        if row is None or (row.status not in (StepStatus.QUEUED, StepStatus.RUNNING) and not row.lease_token):
            self._may_start_new_work()
            seq = row.seq if row is not None else self._new_seq()
            row = await self._store(store.queue_remote_step, self.lease, key, row, seq, storable_config(config), clock.now())
            self.steps[key] = row
        self.queued_at.setdefault(row.id, time.monotonic())
        while True:
            waiter = asyncio.get_running_loop().create_future()
            self.remote_waiters[row.id] = waiter
            if self.watcher is None:
                self.watcher = asyncio.ensure_future(self._watch_remote_steps())
            outcome, state = await waiter
            if outcome == "steal":
                try:
                    return await self._run_local(key, row, config, fn, steal=True)
                except store.StepTaken:
                    continue
            row.status, row.attempts, row.wake_at, row.lease_token = state["status"], state["attempts"], state["wake_at"], None
            if state["status"] == StepStatus.SUCCEEDED:
                row.result = state["result"]
                return decode(row.result)
            if state["status"] == StepStatus.FAILED:
                row.error = state["error"]
                raise rebuild_error(state["error"])
            return await self._wait_for_retry()  # RETRYING: park until its delay is over

    async def _watch_remote_steps(self):
        """One query per tick for every handed-out step: finished ones wake their branch, queued
        ones are taken back when a local slot is free, those of dead workers are re-queued."""
        try:
            while self.remote_waiters:
                await asyncio.sleep(conf.get("FANOUT_POLL_SECONDS"))
                states = await self._store(store.watch_steps, self.lease, list(self.remote_waiters), clock.now())
                free = conf.get("LOCAL_STEP_CONCURRENCY") - self.local_running
                for step_id, state in states.items():
                    waiter = self.remote_waiters.get(step_id)
                    if waiter is None:
                        continue
                    if state["status"] in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.RETRYING):
                        del self.remote_waiters[step_id]
                        waiter.set_result(("done", state))
                    elif (
                        state["status"] == StepStatus.QUEUED and not state["lease_token"] and free > 0
                        # Give the other workers a moment to claim it before taking it back.
                        and time.monotonic() - self.queued_at.get(step_id, 0) >= conf.get("STEAL_AFTER_SECONDS")
                    ):
                        del self.remote_waiters[step_id]
                        waiter.set_result(("steal", state))
                        free -= 1
        except BaseException as exc:
            for waiter in self.remote_waiters.values():
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, (Abandon, Suspend)) else Abandon())
            self.remote_waiters.clear()
        finally:
            self.watcher = None

    def _config(self, name, row, retries, timeout) -> dict:
        """The step's config; frozen at its first execution (later code changes do not apply)."""
        live = resolve_step_config(name, retries, timeout)
        if row is None or not row.config:
            return live
        frozen = copy.deepcopy(row.config)
        if frozen["retries"]["delay"] == "[dynamic]":
            frozen["retries"]["delay"] = live["retries"]["delay"]
        return frozen

    async def _execute(self, key, row, config, fn, *, steal: bool = False):
        kind, name, occurrence = key
        if not steal and row is not None and row.status == StepStatus.RUNNING:
            # The worker running the last attempt died; the claim recorded it as failed.
            error = WorkflowInternalError(store.INTERNAL_ERROR["message"])
            log.warning("%s: step %r attempt %d was interrupted by a worker crash", self.label, name, row.attempts, **self._log(name, row.attempts))
            await self._after_failure(key, row, config, error, "", record_attempt=False, retry_now=True)
        while True:
            self._may_start_new_work()
            now = clock.now()
            seq = row.seq if row is not None else self._new_seq()
            stored_config = storable_config(config)
            row = await self._store(store.begin_attempt, self.lease, key, row, seq, stored_config, now, steal=steal)
            steal = False
            self.steps[key] = row
            ctx = StepContext(name, occurrence, row.attempts, storable_config(config))
            # Let the database work that sibling branches queued in this tick (handing steps
            # to other workers, above all) finish before a possibly CPU-bound callback starts
            # competing with it for the GIL.
            await self.bridge.settled()
            try:
                value = await self._attempt(fn, ctx, config["timeout"])
                text = encode_limited(value, what=f'Value returned from step "{name}"', limit=conf.get("MAX_VALUE_BYTES"))
            except (Suspend, Abandon):
                raise
            except NotSerialisable as exc:
                error = WorkflowFatalError(f'Value returned from step "{name}" is not serialisable: {exc}')
                await self._store(store.attempt_failed, self.lease, row, error_record(error), "", clock.now(), retry_at=None, retry_delay=None)
                self.fatal = {
                    "name": "WorkflowFatalError",
                    "message": f'The execution of the Workflow instance was terminated, as the step "{name}" '
                               f"returned a value which is not serialisable: {exc}",
                }
                self.stop_reason = self.stop_reason or "fatal"
                raise error from None
            except ValueTooLarge as exc:
                error = WorkflowInternalError(f"Step {name}-{occurrence} output is too large: {exc}")
                delay = await self._after_failure(key, row, config, error, "")
            except _AttemptTimedOut:
                error = WorkflowTimeoutError(f"Execution timed out after {int(config['timeout'] * 1000)}ms (step \"{name}\" attempt {row.attempts})")
                delay = await self._after_failure(key, row, config, error, "")
            except Exception as exc:
                delay = await self._after_failure(key, row, config, exc, traceback.format_exc())
            else:
                await self._store(store.attempt_succeeded, self.lease, row, text, clock.now())
                return decode(text)
            if delay > 0:
                return await self._wait_for_retry()

    async def _wait_for_retry(self):
        """Park through a retry delay; the next replay runs the next attempt."""
        self._leave()
        try:
            await self._park()
        finally:
            self._enter()

    async def _attempt(self, fn, ctx, timeout):
        """One attempt: the callback, or what a test's modifications put in its place."""
        name, index, attempt = ctx.step.name, ctx.step.count, ctx.attempt
        if self.overrides.forced_timeout(name, index, attempt):
            raise _AttemptTimedOut()
        mocked_error = self.overrides.mocked_error(name, index, attempt)
        if mocked_error is not None:
            raise rebuild_error(mocked_error)
        mocked, value = self.overrides.mocked_result(name, index)
        if mocked:
            return value
        return await self._invoke(fn, ctx, timeout)

    async def _invoke(self, fn, ctx, timeout):
        """Call the step's callback with ``ctx`` if it takes an argument, under the attempt timeout.

        Plain functions run in the callback thread pool; a timed-out one keeps running there
        (Python cannot kill a thread) but its result is discarded.
        """
        args = (ctx,) if _takes_ctx(fn) else ()
        try:
            async with asyncio.timeout(timeout) as deadline:
                if inspect.iscoroutinefunction(fn):
                    return await fn(*args)
                context = contextvars.copy_context()
                if self.inline_callbacks:
                    # In-process runs (tests): on the connection's own thread, inside its
                    # transaction; a savepoint keeps a failing SQL statement in the callback
                    # from aborting that whole transaction (as autocommit does in a worker).
                    value = await self.db(context.run, _in_savepoint, fn, *args)
                else:
                    loop = asyncio.get_running_loop()
                    value = await loop.run_in_executor(_callback_pool, context.run, _call_in_thread, fn, args)
                if inspect.isawaitable(value):
                    value = await value
                return value
        except TimeoutError:
            if deadline.expired():
                raise _AttemptTimedOut() from None
            raise

    async def _after_failure(self, key, row, config, exc, traceback_text, *, record_attempt=True, retry_now=False):
        """Decide what a failed attempt leads to: another attempt now, a retry delay, or the end.

        Returns to let the caller run the next attempt at once; raises Suspend to wait out a
        retry delay; raises the (rebuilt) step error when the step has failed for good.
        """
        kind, name, occurrence = key
        retries = config["retries"]
        retry_at = retry_delay = None
        final = isinstance(exc, NonRetryableError) or row.attempts > retries["limit"]
        if not final:
            try:
                retry_delay = 0.0 if retry_now else await self._retry_delay(key, row, config, exc)
            except NonRetryableDelayError as delay_error:
                exc, traceback_text, final = delay_error, traceback_text, True
        if not final:
            retry_at = clock.now() + timedelta(seconds=retry_delay)
        record = error_record(exc)
        log.info(
            "%s: step %r attempt %d failed: %s: %s%s", self.label, name, row.attempts, record["name"], record["message"],
            "" if final else f" (retry in {retry_delay:g}s)", **self._log(name, row.attempts),
        )
        await self._store(
            store.attempt_failed, self.lease, row, record, traceback_text, clock.now(),
            retry_at=retry_at, retry_delay=retry_delay, record_attempt=record_attempt,
        )
        if final:
            raise rebuild_error(record)
        return retry_delay

    async def _retry_delay(self, key, row, config, exc) -> float:
        kind, name, occurrence = key
        if self.overrides.retry_delay_disabled(name, occurrence):
            return 0.0
        retries = config["retries"]
        base = retries["delay"]
        if callable(base):
            ctx = StepContext(name, occurrence, row.attempts, storable_config(config))
            try:
                value = base(ctx, exc)
                if inspect.isawaitable(value):
                    value = await asyncio.wait_for(value, 5)
                base = parse_duration(value)
            except Exception as delay_exc:
                raise NonRetryableDelayError(
                    f'The delay function for step "{name}-{occurrence}" failed: {type(delay_exc).__name__}: {delay_exc}'
                ) from None
        return retry_wait(retries["backoff"], base, row.attempts)

    # ---- sleep / sleep_until

    async def sleep(self, name, wake_for):
        check_step_name(name)
        key = self._next_key(StepKind.SLEEP, name)
        row = self.steps.get(key)
        now = clock.now()
        skip = self.overrides.sleep_disabled(name, key[2])
        if self.remote:
            if row is None or (row.status != StepStatus.SUCCEEDED and row.wake_at > now):
                await self._park()
            return None
        if row is not None:
            if row.status == StepStatus.SUCCEEDED:
                return None
            if row.wake_at <= now or skip:
                await self._store(store.end_sleep, self.lease, row, now)
                return None
            await self._park()
        wake_at = now if skip else wake_for(now)
        self._may_start_new_work()
        row = await self._store(store.begin_sleep, self.lease, key, self._new_seq(), wake_at, now)
        self.steps[key] = row
        if row.status != StepStatus.SUCCEEDED:
            await self._park()
        return None

    # ---- wait_for_event

    async def wait_for_event(self, name, event_type, timeout_seconds):
        check_step_name(name)
        key = self._next_key(StepKind.WAIT, name)
        row = self.steps.get(key)
        if row is not None and row.status == StepStatus.SUCCEEDED:
            return decode(row.result)
        if row is not None and row.status == StepStatus.FAILED:
            raise rebuild_error(row.error)
        if self.remote:
            await self._park()
        now = clock.now()
        if row is None:
            self._may_start_new_work()
        forced_timeout = self.overrides.event_timeout_forced(name, key[2])
        deadline = row.wake_at if row is not None else now + timedelta(seconds=timeout_seconds)
        if forced_timeout:
            deadline = now
        timeout_error = error_record(WorkflowTimeoutError(
            f"Execution timed out after {int(timeout_seconds * 1000)}ms waiting for an event of type {event_type!r} (step \"{name}\")"
        ))
        seq = row.seq if row is not None else self._new_seq()
        row = await self._store(
            store.receive_event, self.lease, key, row, seq, event_type, deadline, timeout_error, now, take_events=not forced_timeout
        )
        self.steps[key] = row
        if row.status == StepStatus.SUCCEEDED:
            return decode(row.result)
        if row.status == StepStatus.FAILED:
            raise rebuild_error(row.error)
        await self._park()


# --------------------------------------------------------------------------- entry point


class _Heartbeat:
    """Renews the leases of the instances this process is running, while long steps run."""

    def __init__(self):
        self.leases: dict[int, store.Lease] = {}
        self.lock = threading.Lock()
        self.thread = None

    def track(self, lease):
        with self.lock:
            self.leases[id(lease)] = lease
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="workflow-heartbeat", daemon=True)
                self.thread.start()

    def untrack(self, lease):
        with self.lock:
            self.leases.pop(id(lease), None)

    def _loop(self):
        while True:
            time.sleep(max(0.5, conf.get("LEASE_SECONDS") / 4))
            with self.lock:
                leases = list(self.leases.values())
            for lease in leases:
                try:
                    store.renew(lease, clock.now())
                except Exception:
                    log.exception("heartbeat: could not renew lease of instance %s", lease.pk)
                    close_old_connections()


heartbeat = _Heartbeat()


def advance(pk: int, *, renew_leases: bool = True, inline_callbacks: bool = False) -> str:
    """Claim instance ``pk`` and run it as far as it can go now. Safe to call for any pk, any time.

    ``inline_callbacks`` runs plain-function step callbacks on the calling thread, so they
    share its database connection and transaction (in-process test runs); steps then run
    one at a time, and a timed-out callback is waited for before its result is discarded.

    Returns what happened: "not claimed" (nothing to do, or another worker has it),
    "complete", "errored", "parked", "paused", "handed back" or "abandoned".
    """
    now = clock.now()
    claim = store.claim(pk, now)
    if claim is None:
        return "not claimed"
    crashes = claim.instance.worker_crashes
    if crashes > conf.get("MAX_WORKER_CRASHES"):
        store.fail_crash_loop(pk, claim.lease, crashes, now)
        log.error("%s/%s: errored after %d worker crashes", claim.instance.workflow_name, claim.instance.instance_id, crashes)
        return "errored"
    bridge = DatabaseBridge()
    runner = Runner(claim, bridge, inline_callbacks=inline_callbacks)
    if renew_leases:
        heartbeat.track(claim.lease)
    try:
        return bridge.serve(runner.main)
    finally:
        if renew_leases:
            heartbeat.untrack(claim.lease)


def run_step(step_id: int) -> str:
    """Run one handed-out step for its instance (fan-out). Safe to call for any id, any time."""
    claimed = store.claim_step(step_id, clock.now(), batch=conf.get("LOCAL_STEP_CONCURRENCY"))
    if claimed is None:
        return "not claimed"
    lease, claim, keys = claimed
    bridge = DatabaseBridge()
    runner = Runner(claim, bridge, target_keys=keys)
    heartbeat.track(lease)
    try:
        return bridge.serve(runner.run_target)
    finally:
        heartbeat.untrack(lease)
