"""``step.do``: memoisation, attempts, timeouts and retries with backoff.

``run_do`` returns a finished step's stored result (or re-raises its stored error) without
running anything. Otherwise a ``StepCall`` runs attempts here, or the fan-out coordinator
hands the step to another worker process (``engine.fanout``). Each attempt:

1. commits its start (``records.begin_attempt``) before user code runs, so a worker killed
   mid-attempt is noticed by the next claim and the attempt counted as failed;
2. runs the callback (or what a test's modifications put in its place) under the attempt
   timeout;
3. stores the result, or decides what the failure leads to: another attempt now, a retry
   delay (the instance parks until it is over), or the step failing for good, in which
   case the error is stored and re-raised in ``run()`` on this and every later replay.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import logging
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from workflows import clock, conf, metrics, tracing
from workflows.durations import parse_duration
from workflows.engine import records
from workflows.engine.context import StepContext, takes_ctx
from workflows.engine.control import Abandon, AttemptTimedOut, Suspend
from workflows.engine.rows import StepKey, StepRow
from workflows.engine.threads import call_in_thread, callback_pool, in_savepoint
from workflows.error_records import error_record, rebuild_error
from workflows.errors import (
    NonRetryableDelayError,
    NonRetryableError,
    NotSerialisable,
    ValueTooLarge,
    WorkflowError,
    WorkflowFatalError,
    WorkflowInternalError,
    WorkflowTimeoutError,
)
from workflows.history import INTERRUPTED
from workflows.states import StepKind, StepStatus
from workflows.validation import check_step_name, resolve_step_config, retry_wait, storable_config
from workflows.values import decode, encode_limited

if TYPE_CHECKING:
    from workflows.engine.replay import ReplayPass

log = logging.getLogger("workflows.engine")


async def run_do(replay: ReplayPass, name: str, fn: Callable, retries: dict | None, timeout: Any) -> Any:
    """What ``await step.do(name, fn, retries=..., timeout=...)`` returns in this pass."""
    check_step_name(name)
    if not callable(fn):
        raise WorkflowFatalError(f'Step "{name}" requires a callback function, got {type(fn).__name__}')
    replay.do_calls += 1
    limit = conf.get("STEP_LIMIT")
    if replay.do_calls > limit:
        raise WorkflowFatalError(
            f"The limit of {limit} steps has been reached. This limit can be changed with WORKFLOWS['STEP_LIMIT']."
        )
    run = replay.run
    key = replay.next_key(StepKind.DO, name)
    row = run.steps.get(key)
    if row is not None and row.status == StepStatus.SUCCEEDED:
        return decode(row.result)
    if row is not None and row.status == StepStatus.FAILED:
        raise rebuild_error(row.error or {})
    call = StepCall(replay, key, row, frozen_config(name, row, retries, timeout), fn)
    if not run.executes(key):
        await replay.park()  # a fan-out worker runs its claimed steps, nothing else
    if row is not None and row.status == StepStatus.RETRYING and row.wake_at and row.wake_at > clock.now():
        await replay.park()
    replay.enter()
    try:
        if run.fanout is not None and run.fanout.should_delegate(row):
            return await run.fanout.delegate(call)
        return await call.run_local()
    finally:
        replay.leave()


def frozen_config(name: str, row: StepRow | None, retries: dict | None, timeout: Any) -> dict:
    """The step's config; frozen at its first execution (later code changes do not apply)."""
    live = resolve_step_config(name, retries, timeout)
    if row is None or not row.config:
        return live
    frozen = copy.deepcopy(row.config)
    if frozen["retries"]["delay"] == "[dynamic]":
        frozen["retries"]["delay"] = live["retries"]["delay"]
    return frozen


class StepCall:
    """One step.do being executed in this process: its attempts until it succeeds, waits or fails."""

    def __init__(self, replay: ReplayPass, key: StepKey, row: StepRow | None, config: dict, fn: Callable) -> None:
        self.replay = replay
        self.run = replay.run
        self.key = key
        self.name = key[1]
        self.occurrence = key[2]
        self.row = row
        self.config = config
        self.fn = fn

    async def run_local(self, *, steal: bool = False) -> Any:
        self.run.local_running += 1
        try:
            return await self._execute(steal=steal)
        finally:
            self.run.local_running -= 1

    async def _execute(self, *, steal: bool) -> Any:
        row = self.row
        if not steal and row is not None and row.status == StepStatus.RUNNING:
            # The worker running the last attempt died; the claim recorded it as failed.
            log.warning(
                "%s: step %r attempt %d was interrupted by a worker crash", self.run.label, self.name, row.attempts,
                **self.run.log_fields(self.name, row.attempts),
            )  # fmt: skip
            error: WorkflowError = WorkflowInternalError(INTERRUPTED["message"])
            await self._after_failure(error, "", record_attempt=False, retry_now=True)
        while True:
            ctx = await self._begin_attempt(steal=steal)
            steal = False
            try:
                value = await self._measured_attempt(ctx)
                text = encode_limited(
                    value, what=f'Value returned from step "{self.name}"', limit=conf.get("MAX_VALUE_BYTES")
                )
            except (Suspend, Abandon):
                raise
            except NotSerialisable as exc:
                await self._fail_not_serialisable(exc)
            except ValueTooLarge as exc:
                error = WorkflowInternalError(f"Step {self.name}-{self.occurrence} output is too large: {exc}")
                delay = await self._after_failure(error, "")
            except AttemptTimedOut:
                attempt = self.row.attempts if self.row else 0
                ms = int(self.config["timeout"] * 1000)
                error = WorkflowTimeoutError(f'Execution timed out after {ms}ms (step "{self.name}" attempt {attempt})')
                delay = await self._after_failure(error, "")
            except Exception as exc:  # noqa: BLE001 (the step's own failure: its retry rules decide)
                delay = await self._after_failure(exc, traceback.format_exc())
            else:
                await self._store_success(text)
                return decode(text)
            if delay > 0:
                return await self.wait_for_retry()

    async def _store_success(self, text: str) -> None:
        """Commit the result, with the next write when it can wait for one (``records.defer_success``)."""
        assert self.row is not None
        if self.run.dry or not records.defer_success(self.run.bridge, self.run.lease, self.row, text, clock.now()):
            await self.replay.store(records.attempt_succeeded, self.run.lease, self.row, text, clock.now())

    async def _begin_attempt(self, *, steal: bool) -> StepContext:
        """Commit the attempt's start; returns the context its callback gets."""
        self.replay.may_start_new_work()
        seq = self.row.seq if self.row is not None else self.run.new_seq()
        self.row = await self.replay.store(
            records.begin_attempt, self.run.lease, self.key, self.row, seq, storable_config(self.config), clock.now(),
            steal=steal,
        )  # fmt: skip
        self.run.steps[self.key] = self.row
        # Let the database work that sibling branches queued in this tick (handing steps
        # to other workers, above all) finish before a possibly CPU-bound callback starts
        # competing with it for the GIL.
        await self.run.bridge.settled()
        if self.run.fanout is not None:
            await self.run.fanout.settled()
        return StepContext(self.name, self.occurrence, self.row.attempts, storable_config(self.config))

    async def _fail_not_serialisable(self, exc: NotSerialisable) -> None:
        """A step that returns what cannot be stored errors the instance once this pass ends."""
        error = WorkflowFatalError(f'Value returned from step "{self.name}" is not serialisable: {exc}')
        await self.replay.store(
            records.attempt_failed, self.run.lease, self.row, error_record(error), "", clock.now(),
            retry_at=None, retry_delay=None,
        )  # fmt: skip
        self.replay.fatal = {
            "name": "WorkflowFatalError",
            "message": f'The execution of the Workflow instance was terminated, as the step "{self.name}" '
            f"returned a value which is not serialisable: {exc}",
        }
        self.replay.stop_reason = self.replay.stop_reason or "fatal"
        raise error from None

    async def wait_for_retry(self) -> Any:
        """Park through a retry delay; the next replay runs the next attempt."""
        self.replay.leave()
        try:
            await self.replay.park()
        finally:
            self.replay.enter()

    async def _measured_attempt(self, ctx: StepContext) -> Any:
        """The attempt, timed for ``workflows_step_attempt_seconds`` and traced when tracing is on."""
        began = time.monotonic()
        outcome = "failed"
        try:
            with tracing.attempt(self.run, self.name, ctx.attempt):
                value = await self._attempt(ctx)
            outcome = "succeeded"
            return value
        finally:
            workflow = self.run.instance.workflow_name
            labels = {"workflow": workflow, "step": metrics.step_label(workflow, self.name), "outcome": outcome}
            metrics.time_taken("workflows_step_attempt_seconds", time.monotonic() - began, **labels)

    async def _attempt(self, ctx: StepContext) -> Any:
        """One attempt: the callback, or what a test's modifications put in its place."""
        overrides = self.run.overrides
        if overrides.forced_timeout(self.name, self.occurrence, ctx.attempt):
            raise AttemptTimedOut()
        mocked_error = overrides.mocked_error(self.name, self.occurrence, ctx.attempt)
        if mocked_error is not None:
            raise rebuild_error(mocked_error)
        mocked, value = overrides.mocked_result(self.name, self.occurrence)
        if mocked:
            return value
        return await self._invoke(ctx)

    async def _invoke(self, ctx: StepContext) -> Any:
        """Call the callback with ``ctx`` if it takes an argument, under the attempt timeout.

        Plain functions run in the callback thread pool; a timed-out one keeps running there
        (Python cannot kill a thread) but its result is discarded.
        """
        fn = self.fn
        args = (ctx,) if takes_ctx(fn) else ()
        try:
            async with asyncio.timeout(self.config["timeout"]) as deadline:
                if inspect.iscoroutinefunction(fn):
                    return await fn(*args)
                context = contextvars.copy_context()
                if self.run.inline_callbacks:
                    # In-process runs (tests): on the connection's own thread, inside its
                    # transaction; a savepoint keeps a failing SQL statement in the callback
                    # from aborting that whole transaction (as autocommit does in a worker).
                    value = await self.run.db(context.run, in_savepoint, fn, *args)
                    if _past(deadline):  # it blocked the loop, so the deadline could not fire
                        raise AttemptTimedOut()
                else:
                    loop = asyncio.get_running_loop()
                    value = await loop.run_in_executor(callback_pool, context.run, call_in_thread, fn, args)
                if inspect.isawaitable(value):
                    value = await value
                return value
        except TimeoutError:
            if deadline.expired():
                raise AttemptTimedOut() from None
            raise

    async def _after_failure(
        self, exc: BaseException, traceback_text: str, *, record_attempt: bool = True, retry_now: bool = False
    ) -> float:
        """Decide what a failed attempt leads to: another attempt now, a retry delay, or the end.

        Returns the delay before the next attempt (0: run it at once); raises the (rebuilt)
        step error when the step has failed for good.
        """
        row = self.row
        assert row is not None
        final = isinstance(exc, NonRetryableError) or row.attempts > self.config["retries"]["limit"]
        retry_at = retry_delay = None
        if not final:
            try:
                retry_delay = 0.0 if retry_now else await self._retry_delay(exc)
            except NonRetryableDelayError as delay_error:
                exc, final = delay_error, True
        if not final:
            retry_at = clock.now() + timedelta(seconds=retry_delay or 0.0)
        record = error_record(exc)
        log.info(
            "%s: step %r attempt %d failed: %s: %s%s", self.run.label, self.name, row.attempts, record["name"],
            record["message"], "" if final else f" (retry in {retry_delay:g}s)",
            **self.run.log_fields(self.name, row.attempts),
        )  # fmt: skip
        await self.replay.store(
            records.attempt_failed, self.run.lease, row, record, traceback_text, clock.now(),
            retry_at=retry_at, retry_delay=retry_delay, record_attempt=record_attempt,
        )  # fmt: skip
        if final:
            raise rebuild_error(record)
        metrics.count("workflows_steps_retried", workflow=self.run.instance.workflow_name)
        return retry_delay or 0.0

    async def _retry_delay(self, exc: BaseException) -> float:
        if self.run.overrides.retry_delay_disabled(self.name, self.occurrence):
            return 0.0
        retries = self.config["retries"]
        base = retries["delay"]
        if callable(base):
            base = await self._dynamic_delay(base, exc)
        assert self.row is not None
        return retry_wait(retries["backoff"], base, self.row.attempts)

    async def _dynamic_delay(self, delay_fn: Callable, exc: BaseException) -> float:
        ctx = StepContext(
            self.name, self.occurrence, self.row.attempts if self.row else 0, storable_config(self.config)
        )
        try:
            value = delay_fn(ctx, exc)
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, 5)
            return parse_duration(value)
        except Exception as delay_exc:  # noqa: BLE001 (the user's function: any failure ends the retries)
            raise NonRetryableDelayError(
                f'The delay function for step "{self.name}-{self.occurrence}" failed: '
                f"{type(delay_exc).__name__}: {delay_exc}"
            ) from None


def _past(deadline: asyncio.Timeout) -> bool:
    when = deadline.when()
    return when is not None and asyncio.get_running_loop().time() >= when
