"""When the code and an instance's recorded history disagree, and patch markers that keep them agreeing.

Replay runs the current ``run()`` over the stored steps. Two things show the code changed
under a parked instance:

- a step the history recorded is never asked for (renamed, removed, or named from
  something that changes on every replay, like ``uuid4()``);
- the code asks for a step the history lacks and then for one it has (a step inserted or
  moved before steps already recorded). In a pass without parallel branches this is seen
  the moment the new step is asked for, before it runs.

The engine records the divergence on the instance (timeline warning, log line, metric) and
carries on, as Cloudflare does; with ``WORKFLOWS["ON_DIVERGENCE"] = "error"`` the instance
errors with ``NonDeterminismError`` naming the steps instead.

``step.patched("id")`` lets new code and old instances agree: at the frontier (nothing
recorded past this point) it records True; an instance whose history already went past it
records False; every later replay reads the recorded answer. ``step.deprecate_patch("id")``
is for the cleanup, once no instance that recorded False is left.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction

from workflows import clock, conf, metrics
from workflows.engine.leases import Lease, fence
from workflows.engine.rows import StepKey, StepRow
from workflows.models import Instance, Step
from workflows.states import StepKind, StepStatus
from workflows.validation import check_step_name
from workflows.values import decode, encode

if TYPE_CHECKING:
    from workflows.engine.replay import InstanceRun, ReplayPass

log = logging.getLogger("workflows.engine")

STEP_WORDS = {"do": "step", "sleep": "sleep", "wait": "wait", "approval": "approval"}


def _named(key: StepKey) -> str:
    kind, name, occurrence = key
    return f'{STEP_WORDS.get(kind, kind)} "{name}"' + (f" #{occurrence}" if occurrence > 1 else "")


def check_step(replay: ReplayPass, key: StepKey) -> None:
    """Called for every step asked for (``ReplayPass.next_key``) when there is history."""
    branch = asyncio.current_task() if replay.async_run else None
    replay.tasks_seen.add(branch)
    if key in replay.history:
        replay.recorded_left -= 1  # each key is asked for once per pass (occurrences count up)
        first_new = replay.went_new.get(branch)
        if first_new is not None:
            diverged(
                replay, "reordered",
                f"the code asked for {_named(first_new)}, which the history lacks, before {_named(key)}, which "
                "the history recorded earlier: a step was inserted or moved before steps already run",
                [first_new, key],
            )  # fmt: skip
        return
    replay.went_new.setdefault(branch, key)
    # One branch only: every recorded step should have been asked for by now. Counted, so a
    # pass that runs thousands of new steps after a long history does not compare sets each time.
    if len(replay.tasks_seen) == 1 and replay.recorded_left:
        ahead = sorted(replay.history - replay.visited, key=lambda k: replay.run.steps[k].seq)
        if ahead:
            diverged(
                replay, "renamed",
                f"the code asks for {_named(key)}, which the history lacks, while {_named(ahead[0])}, recorded "
                "after this point, was never asked for: a step was renamed, removed or inserted",
                [key, *ahead[:3]],
            )  # fmt: skip


def check_unvisited(replay: ReplayPass) -> None:
    """At the end of a pass that completed or parked: recorded steps the code never asked for."""
    unvisited = sorted(replay.history - replay.visited, key=lambda k: replay.run.steps[k].seq)
    if unvisited and replay.divergence is None:
        diverged(
            replay, "never asked",
            f"the history recorded {', '.join(_named(k) for k in unvisited[:3])}"
            f"{' and more' if len(unvisited) > 3 else ''}, which the code no longer asks for "
            "(renamed, removed, or named from something that changes between replays)",
            unvisited[:5],
            stop=False,
        )  # fmt: skip


def diverged(replay: ReplayPass, kind: str, message: str, keys: list[StepKey], stop: bool = True) -> None:
    if replay.divergence is not None:
        return
    replay.divergence = {
        "kind": kind, "message": message, "steps": [list(k) for k in keys], "at": clock.now().isoformat(),
        "mode": conf.get("ON_DIVERGENCE"),
    }  # fmt: skip
    if conf.get("ON_DIVERGENCE") == "error":
        replay.fatal = {"name": "NonDeterminismError", "message": message}
        if stop:
            replay.stop("fatal")


def record(run: InstanceRun, found: dict[str, Any]) -> None:
    """Keep the divergence on the instance, count it and log it (in the database thread)."""
    if run.dry:
        return
    Instance.objects.filter(pk=run.lease.pk).update(divergence=found)
    metrics.increment("workflows_divergences", workflow=run.instance.workflow_name)
    log.warning("%s: history and code diverge: %s", run.label, found["message"], **run.log_fields())


# --------------------------------------------------------------------------- patch markers


async def patched(replay: ReplayPass, patch_id: str) -> bool:
    check_step_name(patch_id)
    key = replay.next_key(StepKind.PATCH, patch_id)
    row = replay.run.steps.get(key)
    if row is not None:
        return bool(decode(row.result))
    taken = not (replay.history - replay.visited)  # nothing recorded past this point: the new code's path
    if replay.run.dry:
        return taken
    replay.may_start_new_work()
    run = replay.run
    row = await replay.store(_record_marker, run.lease, key, run.new_seq(), taken, clock.now())
    run.steps[key] = row
    return taken


def deprecate_patch(replay: ReplayPass, patch_id: str) -> None:
    check_step_name(patch_id)
    key = replay.next_key(StepKind.PATCH, patch_id)
    row = replay.run.steps.get(key)
    if row is not None and decode(row.result) is False:
        diverged(
            replay, "patch",
            f'this instance took the path from before patch "{patch_id}", which the code no longer has: keep '
            f'step.patched("{patch_id}") until no such instance is left',
            [key],
        )  # fmt: skip


def _record_marker(lease: Lease, key: StepKey, seq: int, taken: bool, now: datetime) -> StepRow:
    kind, name, occurrence = key
    with transaction.atomic():
        fence(lease, now)
        step = Step.objects.create(
            instance_id=lease.pk, run_number=lease.run_number, kind=kind, name=name, occurrence=occurrence, seq=seq,
            status=StepStatus.SUCCEEDED, result=encode(taken), started_at=now, ended_at=now,
        )  # fmt: skip
    return StepRow(step.id, kind, name, occurrence, seq, StepStatus.SUCCEEDED, result=step.result)
