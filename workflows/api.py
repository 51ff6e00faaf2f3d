"""The public Python API: ``get_workflow(name)`` and the handles it gives.

Every operation validates its input before touching the database and raises a
``WorkflowError`` subclass whose message names the problem; nothing is changed then.
State changes are single transactions that also kick a worker when there is work to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction

from workflows import attributes, audit, clock, conf, delivery, metrics, tracing
from workflows.definition import lookup, registered
from workflows.error_records import public_error
from workflows.errors import (
    DuplicateInstanceId,
    InstanceNotFound,
    InvalidState,
    WorkflowError,
    WorkflowNotFound,
)
from workflows.history import TERMINATED, cancel_open_steps
from workflows.lineage import parent_columns
from workflows.models import Event, Instance, Step
from workflows.notifications import resume_timers
from workflows.repairs import InstanceRepairs
from workflows.states import FINISHED, Status
from workflows.timers import kick, kick_some, shift_timers, wake_now
from workflows.validation import check_event_type, check_instance_id
from workflows.values import decode, encode_limited, register_type
from workflows.versions import version_of

MAX_BATCH = 100


def get_workflow(name: str) -> WorkflowHandle:
    if not isinstance(name, str) or lookup(name) is None:
        known = ", ".join(sorted(registered())) or "none"
        raise WorkflowNotFound(f"no workflow named {name!r} is registered (registered: {known})")
    return WorkflowHandle(name)


def _encode_params(params: Any, what: str = "params") -> str:
    return encode_limited(params, what=what, limit=conf.get("MAX_VALUE_BYTES"))


def _encode_create_params(params: Any, what: str = "params") -> str:
    # Like Cloudflare, an instance created without params gets an empty dict as its payload.
    return _encode_params({} if params is None else params, what=what)


def _prepare_batch(items: Any) -> list[tuple[str, str]]:
    """(instance id, stored params) of each item of a create_batch call, all validated first."""
    if not isinstance(items, (list, tuple)):
        raise WorkflowError(f"create_batch takes a list of {{'id', 'params'}} dicts, not {type(items).__name__}")
    if not items:
        raise WorkflowError("create_batch should have at least 1 instance")
    if len(items) > MAX_BATCH:
        raise WorkflowError(f"create_batch got {len(items)} instances; the limit is {MAX_BATCH} per call")
    prepared = []
    for position, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"id", "params"}:
            raise WorkflowError(
                f"create_batch item {position} must be a dict with only 'id' and 'params' keys, got {item!r:.200}"
            )
        instance_id = item.get("id")
        instance_id = str(uuid.uuid4()) if instance_id is None else check_instance_id(instance_id)
        prepared.append(
            (instance_id, _encode_create_params(item.get("params"), what=f"params of batch item {position}"))
        )
    return prepared


class WorkflowHandle:
    """Creates and finds instances of one workflow."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.name}>"

    def create(self, id: str | None = None, params: Any = None) -> InstanceHandle:
        """Create an instance (status ``queued``) and queue it for a worker."""
        instance_id = str(uuid.uuid4()) if id is None else check_instance_id(id)
        text = _encode_create_params(params)
        now = clock.now()
        try:
            with transaction.atomic():
                instance = Instance.objects.create(
                    workflow_name=self.name,
                    instance_id=instance_id,
                    params=text,
                    version=version_of(self.name),
                    trace_context=tracing.creation(self.name, instance_id),
                    created_at=now,
                    updated_at=now,
                    **wake_now(now),
                    **parent_columns(),
                )
                attributes.write([instance], {instance.pk: attributes.from_params(self.name, params)})
                metrics.count("workflows_instances_started", workflow=self.name)
                audit.record("create", workflow=self.name, instance_id=instance_id, at=now)
                kick(instance.pk)
        except IntegrityError:
            if Instance.objects.filter(workflow_name=self.name, instance_id=instance_id).exists():
                raise DuplicateInstanceId(
                    f'Workflow instance with id "{instance_id}" already exists in workflow {self.name!r}; '
                    "ids are unique while the instance is kept (use restart() to run it again)"
                ) from None
            raise
        return InstanceHandle(self.name, instance_id, instance.pk)

    def create_batch(self, items: Sequence[dict[str, Any]], *, schedule: dict | None = None) -> list[InstanceHandle]:
        """Create up to 100 instances at once; ids that already exist are skipped, not errors.

        Returns the handles of the instances created, in the order given. ``schedule`` is set
        by the cron scheduler (``event.schedule``).
        """
        prepared = _prepare_batch(items)
        now = clock.now()
        with transaction.atomic():
            wanted = [iid for iid, _ in prepared]
            taken = set(
                Instance.objects.filter(workflow_name=self.name, instance_id__in=wanted).values_list(
                    "instance_id", flat=True
                )
            )
            rows = []
            for instance_id, text in prepared:
                if instance_id in taken:
                    continue
                taken.add(instance_id)
                rows.append(
                    Instance(
                        workflow_name=self.name,
                        instance_id=instance_id,
                        params=text,
                        version=version_of(self.name),
                        trace_context=tracing.creation(self.name, instance_id),
                        schedule=schedule,
                        created_at=now,
                        updated_at=now,
                        **wake_now(now),
                        **parent_columns(),
                    )
                )
            created = self._insert_skipping_races(rows)
            if getattr(lookup(self.name), "search_attributes", ()):
                attributes.write(created, {i.pk: attributes.from_params(self.name, decode(i.params)) for i in created})
            details = {"batch": len(prepared), **({"schedule": schedule} if schedule else {})}
            audit.record_many("create", self.name, [i.instance_id for i in created], details)
            if created:
                metrics.count("workflows_instances_started", len(created), workflow=self.name)
            kick_some([instance.pk for instance in created])
        return [InstanceHandle(self.name, i.instance_id, i.pk) for i in created]

    @staticmethod
    def _insert_skipping_races(rows: list[Instance]) -> list[Instance]:
        """Insert rows; one created concurrently by someone else is skipped, as existing ids are."""
        try:
            with transaction.atomic():
                return Instance.objects.bulk_create(rows)
        except IntegrityError:
            created: list[Instance] = []
            for row in rows:
                try:
                    with transaction.atomic():
                        row.save(force_insert=True)
                    created.append(row)
                except IntegrityError:
                    continue
            return created

    def list(self, **filters: Any) -> dict:
        """A page of this workflow's instances, newest first (see ``queries.list_instances``)."""
        from workflows.queries import list_instances

        return list_instances(self.name, **filters)

    def terminate_all(self, status: str | None = None) -> int:
        """Terminate every unfinished instance (optionally only those with ``status``); returns how many."""
        from workflows.queries import check_status

        check_status(status)
        if status in FINISHED:
            raise WorkflowError(f"terminate_all takes an unfinished status, not {status!r}")
        qs = Instance.objects.filter(workflow_name=self.name).exclude(status__in=FINISHED)
        if status:
            qs = qs.filter(status=status)
        done = 0
        for instance_id, pk in qs.values_list("instance_id", "pk").iterator(chunk_size=500):
            try:
                InstanceHandle(self.name, instance_id, pk).terminate()
                done += 1
            except InvalidState:
                continue  # finished meanwhile
        return done

    def get(self, id: str) -> InstanceHandle:
        check_instance_id(id)
        pk = Instance.objects.filter(workflow_name=self.name, instance_id=id).values_list("pk", flat=True).first()
        if pk is None:
            raise InstanceNotFound(f"no instance {id!r} of workflow {self.name!r} (instance.not_found)")
        return InstanceHandle(self.name, id, pk)


class InstanceHandle(InstanceRepairs):
    """One instance: its status, and the operations an operator or another service may perform."""

    def __init__(self, workflow_name: str, instance_id: str, pk: int | None = None) -> None:
        self.workflow_name = workflow_name
        self.id = instance_id
        self._known_pk = pk

    @property
    def _pk(self) -> int:
        if self._known_pk is None:
            self._known_pk = (
                Instance.objects.filter(workflow_name=self.workflow_name, instance_id=self.id)
                .values_list("pk", flat=True)
                .first()
            )
            if self._known_pk is None:
                raise InstanceNotFound(f"instance {self.id!r} of workflow {self.workflow_name!r} no longer exists")
        return self._known_pk

    def __repr__(self) -> str:
        return f"<InstanceHandle {self.workflow_name}/{self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstanceHandle) and (other.workflow_name, other.id) == (self.workflow_name, self.id)

    def __hash__(self) -> int:
        return hash((self.workflow_name, self.id))

    def _row(self, *, lock: bool = False) -> Instance:
        qs = Instance.objects.filter(pk=self._pk)
        if lock:
            qs = qs.select_for_update()
        instance = qs.first()
        if instance is None:
            raise InstanceNotFound(f"instance {self.id!r} of workflow {self.workflow_name!r} no longer exists")
        return instance

    def status(self) -> dict:
        """``{"status", "output", "error"}``; output only when complete, error only when errored."""
        row = Instance.objects.filter(pk=self._pk).values("status", "output", "error").first()
        if row is None:
            raise InstanceNotFound(f"instance {self.id!r} of workflow {self.workflow_name!r} no longer exists")
        return {
            "status": row["status"],
            "output": decode(row["output"]) if row["status"] == Status.COMPLETE else None,
            "error": public_error(row["error"]) if row["status"] == Status.ERRORED and row["error"] else None,
        }

    def describe(self) -> dict:
        """Params, status, output, error, every step with its attempts, and the events received."""
        from workflows.queries import describe_instance

        story = describe_instance(self.workflow_name, self.id)
        if story is None:
            raise InstanceNotFound(f"instance {self.id!r} of workflow {self.workflow_name!r} no longer exists")
        return story

    def pause(self) -> None:
        """Pause: at once when parked; after the in-flight steps finish when running.

        No effect on an instance that is queued, already paused, or finished.
        """
        now = clock.now()
        with transaction.atomic():
            instance = self._row(lock=True)
            self._audit("pause", now, status=instance.status)
            if instance.status == Status.WAITING:
                Instance.objects.filter(pk=self._pk).update(
                    status=Status.PAUSED, pause_requested=True, paused_at=now, due_at=None, updated_at=now
                )
            elif instance.status == Status.RUNNING:
                Instance.objects.filter(pk=self._pk).update(
                    status=Status.WAITING_FOR_PAUSE, pause_requested=True, updated_at=now
                )

    def resume(self) -> None:
        """Resume a paused instance (its timers move on by the paused time), or cancel a pending pause."""
        now = clock.now()
        with transaction.atomic():
            instance = self._row(lock=True)
            self._audit("resume", now, status=instance.status)
            if instance.status == Status.PAUSED:
                shift_timers(self._pk, now - (instance.paused_at or now))
                resume_timers(self._pk, now)
                Instance.objects.filter(pk=self._pk).update(
                    status=Status.QUEUED, pause_requested=False, paused_at=None, updated_at=now, **wake_now(now)
                )
                kick(self._pk)
            elif instance.status == Status.WAITING_FOR_PAUSE:
                Instance.objects.filter(pk=self._pk).update(
                    status=Status.RUNNING, pause_requested=False, updated_at=now
                )

    def terminate(self) -> None:
        """Stop the instance for good; a step in flight is abandoned and its result discarded."""
        now = clock.now()
        with transaction.atomic():
            instance = self._row(lock=True)
            if instance.status in FINISHED:
                raise InvalidState(
                    f"(instance.cannot_terminate) Cannot terminate instance {self.id!r}: "
                    f"it is already {instance.status}"
                )
            self._audit("terminate", now, status=instance.status)
            Instance.objects.filter(pk=self._pk).update(
                status=Status.TERMINATED,
                ended_at=now,
                wake_at=None,
                due_at=None,
                lease_token=None,
                lease_until=None,
                pause_requested=False,
                updated_at=now,
            )
            current = Step.objects.filter(instance_id=self._pk, run_number=instance.run_number)
            cancel_open_steps(current, now, TERMINATED)

    def audit(self, limit: int = 1000) -> list[dict[str, Any]]:
        """What was done to this instance, by whom and through what, oldest first."""
        return audit.entries(workflow=self.workflow_name, instance_id=self.id, limit=limit)

    def send_event(self, type: str, payload: Any = None, *, idempotency_key: str | None = None) -> bool:
        """Deliver an event; it is buffered (FIFO per type) until a wait_for_event of that type takes it.

        With ``idempotency_key``, sending again with the same key (a retry after a lost
        response) delivers nothing more. Returns False for such a repeat, True otherwise.
        """
        check_event_type(type)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 200
        ):
            raise WorkflowError(f"idempotency_key must be a string of 1 to 200 characters, got {idempotency_key!r:.80}")
        text = _encode_params(payload, what="event payload")
        now = clock.now()
        with transaction.atomic():
            locked = delivery.lock_instance(self._pk)
            if locked is None:
                raise InstanceNotFound(f"instance {self.id!r} of workflow {self.workflow_name!r} no longer exists")
            status, workflow_name, instance_id, trace_context = locked
            if (
                idempotency_key is not None
                and Event.objects.filter(instance_id=self._pk, idempotency_key=idempotency_key).exists()
            ):
                return False
            if status in FINISHED:
                raise InvalidState(f"cannot send an event to instance {self.id!r}: it is {status}")
            sender = Instance(workflow_name=workflow_name, instance_id=instance_id, trace_context=trace_context)
            record = audit.unsaved(
                "send_event", workflow=self.workflow_name, instance_id=self.id, at=now,
                details={"type": type, "payload_bytes": len(text)},
            )  # fmt: skip
            delivery.deliver(self._pk, type, text, now, idempotency_key, tracing.sending(sender, type), record)
        return True


# A step may return the handle of an instance it created (the parent-child pattern); it is
# stored as the workflow name and id and comes back as a handle on replay.
def _handle_from_text(text: str) -> InstanceHandle:
    workflow_name, instance_id = text.split("/", 1)
    return InstanceHandle(workflow_name, instance_id)


register_type(
    InstanceHandle,
    "instance",
    lambda handle: f"{handle.workflow_name}/{handle.id}",
    _handle_from_text,
)
