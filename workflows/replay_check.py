"""Replay stored histories against the code on disk, running nothing and writing nothing.

Before a deploy, ``manage.py workflows check-replay`` replays every unfinished instance's
recorded steps through the current ``run()``: finished steps return their recorded
results, and the replay stops where the instance would do something new (a step to run, a
wait to record, an event to take). Per instance it reports ``clean``, ``diverges`` (where
and how: the divergence checks of ``engine.divergence``) or ``raises`` (``run()`` raised
outside a step). ``export_history`` / ``check_history`` do the same for a history kept as
a JSON file, so a team can keep real instances' histories as test fixtures.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from workflows.definition import Workflow, lookup
from workflows.engine.bridge import DatabaseBridge
from workflows.engine.leases import Lease
from workflows.engine.replay import InstanceRun, ReplayPass
from workflows.engine.rows import Claim, StepRow, load_steps
from workflows.models import Instance
from workflows.states import UNFINISHED, Status

CHECKED_STATUSES = (Status.WAITING, Status.PAUSED, Status.ERRORED, Status.QUEUED)


@dataclass(frozen=True)
class ReplayReport:
    workflow: str
    instance_id: str
    status: str
    version: str
    result: str  # clean, diverges, raises
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DryRun(InstanceRun):
    """An ``InstanceRun`` that only reads: every write ends the pass at the frontier."""

    dry = True

    def _fanout(self) -> None:  # nothing is handed out
        return None


def check_instance(instance: Instance) -> ReplayReport:
    rows, max_seq = load_steps(instance.pk, instance.run_number)
    return _check(instance, rows, max_seq)


def _check(instance: Instance, rows: dict, max_seq: int) -> ReplayReport:
    def report(result: str, detail: str) -> ReplayReport:
        return ReplayReport(
            instance.workflow_name, instance.instance_id, instance.status, instance.version or "", result, detail
        )

    if lookup(instance.workflow_name) is None:
        return report("raises", f"no installed app defines workflow {instance.workflow_name!r}")
    lease = Lease(instance.pk or 0, "replay-check", instance.events_version, 0, instance.run_number)
    run = DryRun(Claim(lease, instance, rows, max_seq), DatabaseBridge())
    replay, outcome, value = asyncio.run(_one_pass(run))
    if replay.divergence is None and (
        outcome == "complete" or (outcome == "suspend" and value in ("park", "frontier"))
    ):
        from workflows.engine import divergence

        divergence.check_unvisited(replay)
    if replay.divergence is not None:
        return report("diverges", replay.divergence["message"])
    if outcome == "error":
        recorded = (instance.error or {}).get("name")
        if instance.status == Status.ERRORED and recorded == type(value).__name__:
            return report("clean", f"fails as recorded ({recorded})")
        return report("raises", f"{type(value).__name__}: {value}")
    if outcome == "complete":
        return report("clean", "run() returns with what is recorded")
    return report("clean", "replays up to where it waits or runs something new")


async def _one_pass(run: DryRun) -> tuple[ReplayPass, str, Any]:
    replay = ReplayPass(run, asyncio.get_running_loop())
    outcome, value = await replay.execute()
    return replay, outcome, value


def check_all(
    workflows: list[str] | None = None, statuses: tuple[str, ...] = CHECKED_STATUSES, limit: int = 1000
) -> list[ReplayReport]:
    """Every unfinished (or errored) instance of ``workflows`` (all by default), oldest first."""
    qs = Instance.objects.filter(status__in=[s for s in statuses if s in (*UNFINISHED, Status.ERRORED)])
    if workflows:
        qs = qs.filter(workflow_name__in=workflows)
    return [check_instance(instance) for instance in qs.order_by("created_at", "pk")[:limit]]


# --------------------------------------------------------------------------- histories as files


def export_history(instance: Instance) -> dict[str, Any]:
    """An instance's current run as a JSON-ready document (``check_history`` replays it)."""
    rows, _ = load_steps(instance.pk, instance.run_number)
    return {
        "workflow": instance.workflow_name, "instance_id": instance.instance_id, "status": instance.status,
        "version": instance.version, "params": instance.params, "created_at": instance.created_at.isoformat(),
        "error": instance.error,
        "steps": [
            {
                "kind": r.kind, "name": r.name, "occurrence": r.occurrence, "seq": r.seq, "status": r.status,
                "result": r.result, "error": r.error, "attempts": r.attempts,
                "wake_at": r.wake_at.isoformat() if r.wake_at else None,
            }  # fmt: skip
            for r in sorted(rows.values(), key=lambda r: r.seq)
        ],
    }  # fmt: skip


def check_history(workflow_cls: type[Workflow], history: dict[str, Any]) -> ReplayReport:
    """Replay a kept history (``export_history``) through ``workflow_cls``'s current code."""
    if lookup(workflow_cls.name) is not workflow_cls:
        raise ValueError(f"{workflow_cls.__qualname__} is not the registered workflow {workflow_cls.name!r}")
    instance = Instance(
        workflow_name=workflow_cls.name, instance_id=history["instance_id"], status=history["status"],
        params=history["params"], version=history.get("version") or "", error=history.get("error"),
        created_at=_when(history["created_at"]), run_number=1,
    )  # fmt: skip
    rows = {}
    for n, s in enumerate(history["steps"], start=1):
        row = StepRow(
            n, s["kind"], s["name"], s["occurrence"], s["seq"], s["status"], result=s["result"], error=s["error"],
            attempts=s.get("attempts", 0), wake_at=_when(s["wake_at"]) if s.get("wake_at") else None,
        )  # fmt: skip
        rows[row.key] = row
    return _check(instance, rows, max((r.seq for r in rows.values()), default=0))


def _when(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        raise ValueError(f"{text!r} is not a time")
    return moment
