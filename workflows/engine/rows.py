"""The in-memory copy of an instance's steps that a replay reads instead of querying per step."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from workflows.models import Step
from workflows.states import StepKind, StepStatus

if TYPE_CHECKING:
    from workflows.engine.leases import Lease, StepLease
    from workflows.models import Instance

# (kind, name, occurrence): how a step is memoised.
StepKey = tuple[str, str, int]

# A claim of the instance (Lease) or of handed-out steps (StepLease).
LeaseT = TypeVar("LeaseT", bound="Lease | StepLease")


@dataclass
class StepRow:
    """One Step row as replay sees it; updated in place as the worker writes."""

    id: int
    kind: str
    name: str
    occurrence: int
    seq: int
    status: str
    result: str | None = None
    error: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    attempts: int = 0
    wake_at: datetime | None = None
    lease_token: str | None = None  # set while another worker process runs the step (fan-out)
    attempt_started_at: datetime | None = None
    lease_until: datetime | None = None
    started_at: datetime | None = None
    sender: str = ""  # not stored: the traceparent of the event a wait just took (tracing)
    event_id: int | None = None  # not stored: the event a wait took, marked consumed with its result
    # Not stored: for a waiting wait, the event it would take, read with the claim
    # (PostgreSQL; engine.events uses it instead of a query of its own).
    next_event: tuple[int, str, datetime, str] | None = None

    @property
    def key(self) -> StepKey:
        return (self.kind, self.name, self.occurrence)


@dataclass
class Claim(Generic[LeaseT]):
    """What a worker holds after claiming: its lease, the instance row and its steps."""

    lease: LeaseT
    instance: Instance
    steps: dict[StepKey, StepRow] = field(default_factory=dict)
    max_seq: int = 0


_FIELDS = (
    "id", "kind", "name", "occurrence", "seq", "status", "result", "error", "config", "attempts", "wake_at",
    "lease_token", "attempt_started_at", "lease_until", "started_at",
)  # fmt: skip


def load_steps(instance_pk: int, run_number: int) -> tuple[dict[StepKey, StepRow], int]:
    """The steps of the instance's current run, keyed (kind, name, occurrence), and the highest seq: one query."""
    rows = [
        StepRow(**values)
        for values in Step.objects.filter(instance_id=instance_pk, run_number=run_number).values(*_FIELDS)
    ]
    return keyed(rows)


def keyed(rows: list[StepRow]) -> tuple[dict[StepKey, StepRow], int]:
    """``load_steps``'s answer for these rows."""
    return {row.key: row for row in rows}, max((row.seq for row in rows), default=0)


def next_event_sql(columns: str, instance: str, event_type: str, deadline: str, step: str, excluded: str = "") -> str:
    """The query for the event a wait takes next (FIFO per type): the oldest of its type that
    arrived by its deadline and is not consumed; one this wait step consumed already comes
    first (its result may not be stored yet). The arguments are SQL (placeholders, or the
    columns of an outer query); ``excluded`` is a further ``AND ...`` on ``e``."""
    return (
        f"SELECT {columns} FROM wf_event e WHERE e.instance_id = {instance} AND e.type = {event_type} "
        f"AND e.created_at <= {deadline} AND (e.consumed_at IS NULL OR e.consumed_by_id = {step}){excluded} "
        f"ORDER BY CASE WHEN e.consumed_by_id = {step} THEN 0 ELSE 1 END, e.id LIMIT 1"
    )


NEXT_EVENT_COLUMNS = "e.id, e.payload, e.created_at, e.trace_context"

# PostgreSQL: the steps as one JSON array, for the claiming statement to return with the
# instance (``leases.claim``); each waiting wait with the event it would take.
_WAITS_NEXT_EVENT = next_event_sql(
    f"json_build_array({NEXT_EVENT_COLUMNS})", "s.instance_id", "s.event_type", "s.wake_at", "s.id"
)
STEPS_JSON_SQL = (
    "(SELECT json_agg(json_build_array(s.id, s.kind, s.name, s.occurrence, s.seq, s.status, s.result, s.error, "
    "s.config, s.attempts, s.wake_at, s.lease_token, s.attempt_started_at, s.lease_until, s.started_at, "
    f"CASE WHEN s.kind = %s AND s.status = %s THEN ({_WAITS_NEXT_EVENT}) END))::text "
    "FROM wf_step s WHERE s.instance_id = claimed.id AND s.run_number = claimed.run_number)"
)
STEPS_JSON_PARAMS = [StepKind.WAIT, StepStatus.WAITING]
_DATETIMES = (10, 12, 13, 14)  # wake_at, attempt_started_at, lease_until, started_at


def rows_from_json(text: str | None) -> list[StepRow]:
    """The rows of ``STEPS_JSON_SQL``'s answer."""
    rows = []
    for values in json.loads(text) if text else []:
        for i in _DATETIMES:
            if values[i] is not None:
                values[i] = datetime.fromisoformat(values[i])
        row = StepRow(*values[:15])
        if values[15] is not None:
            event_id, payload, created_at, sender = values[15]
            row.next_event = (event_id, payload, datetime.fromisoformat(created_at), sender or "")
        rows.append(row)
    return rows
