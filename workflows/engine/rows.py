"""The in-memory copy of an instance's steps that a replay reads instead of querying per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from workflows.models import Step

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
    rows: dict[StepKey, StepRow] = {}
    for values in Step.objects.filter(instance_id=instance_pk, run_number=run_number).values(*_FIELDS):
        row = StepRow(**values)
        rows[row.key] = row
    return rows, max((row.seq for row in rows.values()), default=0)
