"""The read side of the public API: lists, counts and the step-by-step story of an instance.

Used by the command line, the HTTP API and the dashboard, as by any user. Lists use keyset
pagination on (created_at, pk), newest first, so page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from workflows import status_counts
from workflows.definition import registered
from workflows.errors import WorkflowError
from workflows.models import Attempt, Event, Instance, InstanceAttribute, Step
from workflows.states import FINISHED, PUBLIC_KIND, Status, StepKind, StepStatus
from workflows.tracing import trace_id_of
from workflows.values import decode

MAX_PAGE = 500


def check_status(status: str | None) -> str | None:
    if status is not None and status not in Status.values:
        raise WorkflowError(f"invalid status {status!r}; valid statuses: {', '.join(Status.values)}")
    return status


def _encode_cursor(instance: Instance) -> str:
    raw = f"{instance.created_at.isoformat()}|{instance.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, pk = raw.split("|")
        return datetime.fromisoformat(created), int(pk)
    except (ValueError, UnicodeDecodeError):
        raise WorkflowError(f"invalid cursor {cursor!r}: use the next_cursor of a previous page") from None


def summary(instance: Instance) -> dict:
    return {
        "workflow": instance.workflow_name,
        "id": instance.instance_id,
        "status": instance.status,
        "created_at": instance.created_at,
        "updated_at": instance.updated_at,
        "ended_at": instance.ended_at,
        "error": {"name": instance.error["name"], "message": instance.error["message"]} if instance.error else None,
    }


@dataclass(frozen=True)
class InstanceFilter:
    """Which instances a list, a count or a bulk job is about (every field optional)."""

    workflow: str | None = None
    status: str | None = None
    statuses: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_prefix: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # search attributes, all of which must match
    failed_step: str | None = None  # a step of the current run failed for good under this name
    error_name: str | None = None  # the instance's error, e.g. "ConnectionError"
    version: str | None = None  # the workflow version the instance was created with

    @classmethod
    def of(cls, **filters: Any) -> InstanceFilter:
        """Built from keyword filters, each checked (WorkflowError names what is wrong)."""
        attributes = filters.pop("attributes", None)
        attributes = {} if attributes is None else attributes
        statuses = filters.pop("statuses", None)
        statuses = () if statuses is None else statuses
        if not isinstance(statuses, (list, tuple)) or not all(isinstance(s, str) for s in statuses):
            raise WorkflowError(f"statuses must be a list of statuses, got {statuses!r:.80}")
        for status in [*statuses, filters.get("status")]:
            check_status(status if isinstance(status, str) else None)
        unknown = set(filters) - {f.name for f in fields(cls)}
        if unknown:
            raise WorkflowError(f"unknown filter(s) {sorted(unknown)}")
        for key in ("workflow", "status", "id_prefix", "failed_step", "error_name", "version"):
            value = filters.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > 256 or "\x00" in value):
                raise WorkflowError(f"{key} must be text of at most 256 characters (no NUL), got {value!r:.80}")
            filters[key] = value or None
        for key in ("created_after", "created_before"):
            if filters.get(key) is not None and not isinstance(filters[key], datetime):
                raise WorkflowError(f"{key} must be a datetime, got {filters[key]!r:.80}")
        return cls(**filters, statuses=tuple(statuses), attributes=check_attributes(attributes))

    def queryset(self) -> QuerySet[Instance]:
        wanted = [check_status(self.status)] if self.status else [check_status(s) for s in self.statuses]
        qs = Instance.objects.all()
        if self.workflow:
            qs = qs.filter(workflow_name=self.workflow)
        if wanted:
            qs = qs.filter(status__in=wanted)
        if self.created_after:
            qs = qs.filter(created_at__gte=self.created_after)
        if self.created_before:
            qs = qs.filter(created_at__lt=self.created_before)
        if self.id_prefix:
            qs = qs.filter(_id_starts_with(self.id_prefix))
        for name, value in self.attributes:  # each through the (name, value, instance) index
            qs = qs.filter(Exists(InstanceAttribute.objects.filter(instance=OuterRef("pk"), name=name, value=value)))
        if self.failed_step:
            failed = Step.objects.filter(
                instance=OuterRef("pk"), run_number=OuterRef("run_number"), name=self.failed_step,
                status=StepStatus.FAILED,
            )  # fmt: skip
            qs = qs.filter(Exists(failed))
        if self.error_name:
            qs = qs.filter(error__name=self.error_name)
        if self.version:
            qs = qs.filter(version=self.version)
        return qs

    def as_dict(self) -> dict[str, Any]:
        """The non-empty fields, JSON-ready (for a bulk job's record and its confirmation)."""
        found: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if value in (None, (), ""):
                continue
            found[key] = dict(value) if key == "attributes" else list(value) if key == "statuses" else value
        return found


MAX_ATTRIBUTES = 10


def check_attributes(attributes: Any) -> tuple[tuple[str, str], ...]:
    """Search attributes as (name, value) pairs; WorkflowError names a bad one."""
    if not isinstance(attributes, dict):
        raise WorkflowError(f"attributes must be a mapping of name to value, got {type(attributes).__name__}")
    if len(attributes) > MAX_ATTRIBUTES:
        raise WorkflowError(f"at most {MAX_ATTRIBUTES} attributes at once, got {len(attributes)}")
    pairs = []
    for name, value in attributes.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64 or "\x00" in name:
            raise WorkflowError(f"an attribute name is 1 to 64 characters, got {name!r:.80}")
        text = attribute_text(value)
        if text is None:
            raise WorkflowError(f"attribute {name!r}: a value is text or a number of at most 200 characters")
        pairs.append((name, text))
    return tuple(sorted(pairs))


def attribute_text(value: Any) -> str | None:
    """How a value is stored and searched: text as it is, numbers and booleans as their JSON."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = value if isinstance(value, str) else json.dumps(value)
    else:
        return None
    return text if 0 < len(text) <= 200 and "\x00" not in text else None


def _chosen(
    workflow: str | None,
    status: str | None,
    statuses: Iterable[str] | None,
    created_after: datetime | None,
    created_before: datetime | None,
    id_prefix: str | None,
    **more: Any,
) -> InstanceFilter:
    return InstanceFilter.of(
        workflow=workflow, status=status, statuses=statuses, created_after=created_after,
        created_before=created_before, id_prefix=id_prefix, **more,
    )  # fmt: skip


def _matching(*args: Any, **kwargs: Any) -> QuerySet[Instance]:
    return _chosen(*args, **kwargs).queryset()


def list_instances(
    workflow: str | None = None,
    *,
    status: str | None = None,
    statuses: Iterable[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    id_prefix: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    **more: Any,
) -> dict:
    """A page of instances, newest first: ``{"instances": [summary...], "next_cursor": str | None}``.

    ``more``: ``attributes={"customer": "acme"}``, ``failed_step="extract"``,
    ``error_name="ConnectionError"`` (see ``InstanceFilter``).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise WorkflowError(f"invalid limit {limit!r}: use 1 to {MAX_PAGE}")
    qs = _matching(workflow, status, statuses, created_after, created_before, id_prefix, **more)
    if cursor:
        created, pk = _decode_cursor(cursor)
        qs = qs.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=pk))
    rows = list(
        qs.order_by("-created_at", "-pk").only(
            "workflow_name", "instance_id", "status", "created_at", "updated_at", "ended_at", "error"
        )[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {"instances": [summary(r) for r in rows], "next_cursor": _encode_cursor(rows[-1]) if has_more else None}


def count_instances(
    workflow: str | None = None,
    *,
    status: str | None = None,
    statuses: Iterable[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    id_prefix: str | None = None,
    **more: Any,
) -> int:
    """How many instances match the same filters as ``list_instances`` (all pages together).

    Filtering by workflow, status and version only (what the list shows unfiltered, every
    few seconds), the figure comes from the status counts rather than counting rows.
    """
    chosen = _chosen(workflow, status, statuses, created_after, created_before, id_prefix, **more)
    if set(chosen.as_dict()) <= {"workflow", "status", "statuses", "version"}:
        wanted = {chosen.status} if chosen.status else set(chosen.statuses)
        return sum(
            n
            for (name, version, state), n in status_counts.counts(
                None if not chosen.workflow else [chosen.workflow]
            ).by_key.items()
            if (not wanted or state in wanted) and (not chosen.version or version == chosen.version)
        )
    return chosen.queryset().count()


def latest_instance_id(workflow: str) -> str | None:
    return (
        Instance.objects.filter(workflow_name=workflow)
        .order_by("-created_at", "-pk")
        .values_list("instance_id", flat=True)
        .first()
    )


def list_workflows(names: list[str] | None = None) -> list[dict]:
    """Every registered workflow (or only ``names``) with its instance counts per status and
    its latest activity. Asking for one workflow counts only its instances."""
    found = status_counts.counts(names)  # kept by triggers: no count over the instances
    counts: dict[str, dict] = {name: {} for name in (registered() if names is None else names)}
    for name in found.workflows():
        counts[name] = found.by_status(name)
    latest = found.last_at
    classes = registered()
    return [
        {
            "name": name,
            "registered": name in classes,
            "description": " ".join((classes[name].__doc__ or "").strip().split("\n\n")[0].split())
            if name in classes
            else "",
            "counts": {status: counts[name].get(status, 0) for status in Status.values},
            "last_activity": latest.get(name),
        }
        for name in sorted(counts)
    ]


def list_versions() -> list[dict[str, Any]]:
    """See ``workflows.list_versions``: read from the status counts, not the instances."""
    from workflows.versions import known_versions

    current = known_versions()
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for (workflow, version, status), n in status_counts.counts().by_key.items():
        # Versions with only finished instances left (until retention prunes them): "drained".
        counts[(workflow, version)] += 0 if status in FINISHED else n
    for name, version in current.items():
        counts.setdefault((name, version), 0)
    rows = []
    for (workflow, version), n in sorted(counts.items()):
        state = "current" if current.get(workflow) == version else ("draining" if n else "drained")
        rows.append({"workflow": workflow, "version": version or "(none)", "unfinished": n, "state": state})
    return rows


def _step_story(step: Step) -> dict:
    story = {
        "kind": PUBLIC_KIND[step.kind],
        "name": step.name,
        "count": step.occurrence,
        "seq": step.seq,
        "status": step.status,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "wake_at": step.wake_at,
        "error": {"name": step.error["name"], "message": step.error["message"]} if step.error else None,
    }
    if step.kind == StepKind.DO:
        story["config"] = step.config
        story["output"] = decode(step.result) if step.status == StepStatus.SUCCEEDED else None
        story["attempts"] = _attempt_stories(step)
        story["resolution"] = step.resolution  # {"by", "at", "note"} when resolved by hand
    elif step.kind == StepKind.WAIT:
        story["event_type"] = step.event_type
        story["timeout_at"] = step.wake_at
        story["event"] = decode(step.result) if step.status == StepStatus.SUCCEEDED else None
    elif step.kind == StepKind.PATCH:
        story["taken"] = decode(step.result)  # True: the patched code's path; False: the old path
    elif step.kind == StepKind.APPROVAL:
        story["timeout_at"] = step.wake_at
        story["decision"] = decode(step.result) if step.status == StepStatus.SUCCEEDED else None
    return story


def _attempt_stories(step: Step) -> list[dict]:
    """Every attempt of a step.do: the failed ones have rows; the running or successful one
    lives on the step row itself."""
    attempts = [
        {
            "number": a.number,
            "started_at": a.started_at,
            "ended_at": a.ended_at,
            "success": a.success,
            "error": {"name": a.error["name"], "message": a.error["message"]} if a.error else None,
            "traceback": a.traceback,
            "retry_delay": a.retry_delay,
        }
        for a in step.attempt_rows.all()
    ]
    recorded = {a["number"] for a in attempts}
    if step.attempts and step.attempts not in recorded and step.status in (StepStatus.RUNNING, StepStatus.SUCCEEDED):
        done = step.status == StepStatus.SUCCEEDED
        attempts.append(
            {
                "number": step.attempts,
                "started_at": step.attempt_started_at,
                "ended_at": step.ended_at if done else None,
                "success": True if done else None,
                "error": None,
                "traceback": "",
                "retry_delay": None,
            }
        )
    return attempts


def _steps_by_run(instance: Instance) -> tuple[list[dict], list[dict]]:
    """The current run's steps, each with the same step's earlier runs (a restart replaced
    them: their attempts and errors are kept), and the earlier steps no current step matches."""
    rows = (
        Step.objects.filter(instance=instance)
        .order_by("run_number", "seq")
        .prefetch_related(Prefetch("attempt_rows", queryset=Attempt.objects.order_by("number")))
    )
    current: dict[tuple, dict] = {}
    earlier: list[tuple[tuple, dict]] = []
    requests = _approval_requests(instance)
    for row in rows:
        story = {**_step_story(row), "run": row.run_number, "earlier_runs": []}
        if row.kind == StepKind.APPROVAL and row.pk in requests:
            story["approval"] = requests[row.pk].as_dict()
        key = (row.kind, row.name, row.occurrence)
        if row.run_number == instance.run_number:
            current[key] = story
        else:
            earlier.append((key, story))
    unmatched = []
    for key, story in earlier:
        if key in current:
            current[key]["earlier_runs"].append(story)
        else:
            unmatched.append(story)
    return sorted(current.values(), key=lambda s: s["seq"]), unmatched


def _approval_requests(instance: Instance) -> dict[int, Any]:
    """The approval requests of an instance's approval steps, by step id (one query and two prefetches)."""
    from workflows.decisions import Request, _requests

    return {row.step_id: Request(row, row.decision_rows.all()) for row in _requests().filter(instance=instance)}


def describe_instance(workflow: str, instance_id: str) -> dict | None:
    """Everything known about one instance: params, status, output, steps with attempts, events."""
    instance = Instance.objects.filter(workflow_name=workflow, instance_id=instance_id).first()
    if instance is None:
        return None
    steps, earlier_steps = _steps_by_run(instance)
    events = Event.objects.filter(instance=instance).select_related("consumed_by").order_by("pk")
    children = list(
        Instance.objects.filter(parent_workflow=instance.workflow_name, parent_instance_id=instance.instance_id)
        .order_by("created_at")
        .values_list("workflow_name", "instance_id", "status", "created_at")[:100]
    )
    return {
        **summary(instance),
        "parent": {"workflow": instance.parent_workflow, "id": instance.parent_instance_id}
        if instance.parent_workflow
        else None,
        "children": [{"workflow": w, "id": i, "status": st, "created_at": at} for w, i, st, at in children],
        "schedule": instance.schedule,
        "version": instance.version or None,
        "deployment": instance.deployment or None,
        "divergence": instance.divergence,
        "trace_id": trace_id_of(instance.trace_context) or None,
        "params": decode(instance.params),
        "output": decode(instance.output) if instance.status == Status.COMPLETE else None,
        "started_at": instance.started_at,
        "paused_at": instance.paused_at,
        "wake_at": instance.wake_at if instance.status == Status.WAITING else None,
        "run": instance.run_number,
        "steps": steps,
        "earlier_steps": earlier_steps,
        "events": [
            {
                "type": e.type,
                "payload": decode(e.payload),
                "created_at": e.created_at,
                "consumed_at": e.consumed_at,
                "consumed_by": f"{e.consumed_by.name}-{e.consumed_by.occurrence}" if e.consumed_by else None,
            }
            for e in events
        ],
    }


def list_pending_waits(*, exclude_types: Iterable[str] = (), limit: int = 50) -> list[dict]:
    """Every wait_for_event that is waiting now, soonest deadline first (the approval inbox).

    Each: workflow, id, step (name), count, event_type, waiting_since, deadline, instance
    status, params, and the outputs of the instance's finished steps (context for a human).
    """
    waits = list(_pending_waits(exclude_types).select_related("instance").order_by("wake_at", "pk")[:limit])
    outputs: dict[int, list] = {}
    for row in (
        Step.objects.filter(
            instance_id__in=[w.instance_id for w in waits], kind=StepKind.DO, status=StepStatus.SUCCEEDED
        )
        .order_by("seq")
        .values("instance_id", "name", "result")
    ):
        outputs.setdefault(row["instance_id"], []).append({"step": row["name"], "output": decode(row["result"])})
    return [
        {
            "workflow": w.instance.workflow_name,
            "id": w.instance.instance_id,
            "step": w.name,
            "count": w.occurrence,
            "event_type": w.event_type,
            "waiting_since": w.started_at,
            "deadline": w.wake_at,
            "status": w.instance.status,
            "params": decode(w.instance.params),
            "outputs": outputs.get(w.instance_id, []),
        }
        for w in waits
    ]


def count_pending_waits(*, exclude_types: Iterable[str] = ()) -> int:
    return _pending_waits(exclude_types).count()


def _pending_waits(exclude_types: Iterable[str]) -> QuerySet[Step]:
    """Waits still waiting, of instances not finished (a terminated one leaves its wait behind)."""
    return (
        Step.objects.filter(kind=StepKind.WAIT, status=StepStatus.WAITING)
        .exclude(event_type__in=list(exclude_types))
        .exclude(instance__status__in=[Status.COMPLETE, Status.ERRORED, Status.TERMINATED])
    )


def _id_starts_with(prefix: str) -> Q:
    """Instance ids starting with ``prefix``, through the wf_instance_id_prefix index so it
    stays fast at millions of rows: ``LIKE 'prefix%'`` on PostgreSQL (a varchar_pattern_ops
    index); on SQLite, whose LIKE ignores case and so cannot use an index on the column, the
    same rows as a range (case-sensitive, as on PostgreSQL)."""
    if connection.vendor == "postgresql":
        return Q(instance_id__startswith=prefix)
    return Q(instance_id__gte=prefix, instance_id__lt=prefix + "\U0010ffff")
