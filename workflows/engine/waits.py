"""``step.sleep``, ``step.sleep_until`` and ``step.wait_for_event``: steps that wait.

A sleep is a step row with a wake time; a wait is a step row with a deadline and an event
type. Either way the branch parks (``ReplayPass.park``) and, once every branch of ``run()``
waits or is done, the instance is parked until its earliest timer (``engine.parking``;
``workflows.timers`` says how it is woken). When the replay reaches the step again:

- a sleep whose time has come (or that a test disabled) is marked done and returns;
- a wait takes its event if one arrived by its deadline (``engine.events``), else fails for
  good with ``WorkflowTimeoutError`` once the deadline has passed, else parks again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from workflows import clock, tracing
from workflows.engine import events, records
from workflows.error_records import error_record, rebuild_error
from workflows.errors import WorkflowTimeoutError
from workflows.states import StepKind, StepStatus
from workflows.validation import check_step_name
from workflows.values import decode

if TYPE_CHECKING:
    from workflows.engine.replay import ReplayPass


async def sleep(replay: ReplayPass, name: str, wake_for: Callable[[datetime], datetime]) -> None:
    """What ``await step.sleep(...)`` does in this pass: return once its time has come, else park."""
    check_step_name(name)
    run = replay.run
    key = replay.next_key(StepKind.SLEEP, name)
    row = run.steps.get(key)
    now = clock.now()
    skip = run.overrides.sleep_disabled(name, key[2])
    if not run.records_waits:
        if row is None or (row.status != StepStatus.SUCCEEDED and row.wake_at and row.wake_at > now):
            await replay.park()
        return None
    if row is not None:
        if row.status == StepStatus.SUCCEEDED:
            return None
        if (row.wake_at and row.wake_at <= now) or skip:
            await replay.store(records.end_sleep, run.lease, row, now)
            tracing.waited(run, "sleep", name, row.started_at or now, now)
            return None
        await replay.park()
    wake_at = now if skip else wake_for(now)
    replay.may_start_new_work()
    row = await replay.store(records.begin_sleep, run.lease, key, run.new_seq(), wake_at, now)
    run.steps[key] = row
    if row.status != StepStatus.SUCCEEDED:
        await replay.park()
    return None


async def wait_for_event(replay: ReplayPass, name: str, event_type: str, timeout_seconds: float) -> Any:
    """What ``await step.wait_for_event(...)`` returns: the event, or its timeout raised."""
    check_step_name(name)
    run = replay.run
    key = replay.next_key(StepKind.WAIT, name)
    row = run.steps.get(key)
    if row is not None and row.status == StepStatus.SUCCEEDED:
        return decode(row.result)
    if row is not None and row.status == StepStatus.FAILED:
        raise rebuild_error(row.error or {})
    if not run.records_waits:
        await replay.park()
    now = clock.now()
    if row is None:
        replay.may_start_new_work()
    forced_timeout = run.overrides.event_timeout_forced(name, key[2])
    deadline = row.wake_at if row is not None and row.wake_at else now + timedelta(seconds=timeout_seconds)
    if forced_timeout:
        deadline = now
    timeout_error = error_record(
        WorkflowTimeoutError(
            f"Execution timed out after {int(timeout_seconds * 1000)}ms waiting for an event of type "
            f'{event_type!r} (step "{name}")'
        )
    )
    seq = row.seq if row is not None else run.new_seq()
    row = await replay.store(
        events.receive_event, run.lease, key, row, seq, event_type, deadline, timeout_error, now,
        take_events=not forced_timeout, found_events=run.found_events,
    )  # fmt: skip
    run.steps[key] = row
    if row.status == StepStatus.SUCCEEDED:
        # The event is taken; the result rides with the next write (see engine.events).
        run.bridge.defer(records.store_wait_result, run.lease, row, row.result, now)
        tracing.waited(
            run, "wait_for_event", name, row.started_at or now, now, link_to=row.sender, event_type=event_type
        )
        return decode(row.result)
    if row.status == StepStatus.FAILED:
        raise rebuild_error(row.error or {})
    await replay.park()
