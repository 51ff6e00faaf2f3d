"""Putting an instance right: retry from a step (with new params), run waiting retries now,
resolve a failed step by hand. A mixin of ``InstanceHandle`` (``workflows.api``).

Each is one transaction under the instance's row lock that also writes its audit record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Subquery

from workflows import audit, clock, conf
from workflows.errors import InvalidState, WorkflowError
from workflows.history import RESTARTED, cancel_open_steps
from workflows.models import Event, Instance, Step
from workflows.states import Status, StepKind, StepStatus
from workflows.timers import kick, wake_now, wake_steps_now
from workflows.values import decode, encode_limited

_UNCHANGED: Any = object()  # restart() without params keeps the instance's own


class InstanceRepairs:
    """What an operator does to an instance that failed or waits too long."""

    workflow_name: str
    id: str

    @property
    def _pk(self) -> int:  # pragma: no cover - InstanceHandle's
        raise NotImplementedError

    def _row(self, *, lock: bool = False) -> Instance:  # pragma: no cover - InstanceHandle's
        raise NotImplementedError

    def _audit(self, action: str, now: datetime, **details: Any) -> None:
        audit.record(action, workflow=self.workflow_name, instance_id=self.id, details=details, at=now)

    def retry_now(self) -> int:
        """Run steps that sit in a retry delay now instead of at the end of their delay.

        Returns how many steps were woken; 0 (and no change) when none waits for a retry.
        """
        now = clock.now()
        with transaction.atomic():
            instance = self._row(lock=True)
            woken = wake_steps_now(self._pk, StepStatus.RETRYING, now)
            self._audit("retry_now", now, woken=woken)
            if woken and instance.status == Status.WAITING:
                Instance.objects.filter(pk=self._pk).update(updated_at=now, **wake_now(now))
                kick(self._pk)
        return woken

    def failed_step(self) -> tuple[str, int] | None:
        """(name, count) of the step whose final failure errored the instance, if any."""
        step = (
            Step.objects.filter(
                instance_id=self._pk, run_number=Subquery(Instance.objects.filter(pk=self._pk).values("run_number")[:1])
            )
            .filter(status=StepStatus.FAILED)
            .order_by("-seq")
            .first()
        )
        return (step.name, step.occurrence) if step else None

    def restart(self, from_step: str | tuple[str, int] | None = None, params: Any = _UNCHANGED) -> None:
        """Run the instance again with the same id (and params, unless ``params`` is given).

        ``from_step`` (a step name, or ``(name, count)``) keeps the results of the steps that
        started before that step and re-runs it and everything after it; without it all
        state, buffered events included, is erased. A running step is abandoned. With
        ``params`` the instance runs on with those (checked like a create's); the old ones
        are kept in the audit log.
        """
        now = clock.now()
        new_params = None if params is _UNCHANGED else _encode_params(params)
        with transaction.atomic():
            instance = self._row(lock=True)
            current = Step.objects.filter(instance_id=self._pk, run_number=instance.run_number)
            kept: list[int] = []
            if from_step is None:
                Event.objects.filter(instance_id=self._pk).delete()
            else:
                target = self._find_step(from_step, instance.run_number)
                finished_before = current.filter(seq__lt=target.seq).exclude(status=StepStatus.CANCELLED)
                kept = list(finished_before.values_list("pk", flat=True))
                Event.objects.filter(consumed_by__in=current.exclude(pk__in=kept)).delete()
            # The replaced steps stay in this run, as history; the kept ones move to the next.
            cancel_open_steps(current.exclude(pk__in=kept), now, RESTARTED)
            where: dict[str, Any] = {}
            if from_step:
                name, count = from_step if isinstance(from_step, (tuple, list)) else (from_step, 1)
                where = {"from_step": name, "count": count}
            if new_params is not None:
                where.update(old_params=decode(instance.params), new_params=decode(new_params))
                Instance.objects.filter(pk=self._pk).update(params=new_params)
            self._audit("restart", now, status=instance.status, **where)
            Step.objects.filter(pk__in=kept).update(run_number=instance.run_number + 1)
            Instance.objects.filter(pk=self._pk).update(
                run_number=instance.run_number + 1,
                status=Status.QUEUED,
                output=None,
                error=None,
                ended_at=None,
                lease_token=None,
                lease_until=None,
                pause_requested=False,
                paused_at=None,
                worker_crashes=0,
                events_version=F("events_version") + 1,
                updated_at=now,
                **wake_now(now),
            )
            kick(self._pk)

    def resolve_step(self, name: str, output: Any, *, count: int = 1, note: str = "") -> None:
        """Record a failed (or retry-waiting) ``step.do`` as succeeded with ``output``, by hand.

        For an operator who fixed what the step could not: the instance resumes from there
        as if the step had returned ``output`` (checked by the value codec and size limit).
        The step is marked resolved by hand (who, when, ``note``), shown on the timeline and
        in ``describe``. InvalidState unless the step failed or waits to retry and the
        instance is errored or waiting.
        """
        if not isinstance(note, str) or len(note) > 2000:
            raise WorkflowError("note must be text of at most 2000 characters")
        text = encode_limited(output, what="the step's output", limit=conf.get("MAX_VALUE_BYTES"))
        now = clock.now()
        with transaction.atomic():
            instance = self._row(lock=True)
            if instance.status not in (Status.ERRORED, Status.WAITING):
                raise InvalidState(
                    f"(instance.cannot_resolve) {self.id!r} is {instance.status}: only an errored or waiting "
                    "instance has a step to resolve"
                )
            step = self._find_step((name, count), instance.run_number)
            if step.kind != StepKind.DO or step.status not in (StepStatus.FAILED, StepStatus.RETRYING):
                raise InvalidState(
                    f'(step.cannot_resolve) step "{name}" (occurrence {count}) is {step.status}: only a failed '
                    "step.do or one waiting to retry can be resolved by hand"
                )
            who = audit.current().name
            Step.objects.filter(pk=step.pk).update(
                status=StepStatus.SUCCEEDED, result=text, error=None, wake_at=None, ended_at=now,
                resolution={"by": who or None, "at": now.isoformat(), "note": note},
            )  # fmt: skip
            resume = {"error": None, "output": None, "ended_at": None, "worker_crashes": 0}
            Instance.objects.filter(pk=self._pk).update(
                status=Status.QUEUED, events_version=F("events_version") + 1, updated_at=now, **wake_now(now),
                **(resume if instance.status == Status.ERRORED else {}),
            )  # fmt: skip
            self._audit("resolve_step", now, step=name, count=count, note=note, status=instance.status)
            kick(self._pk)

    def _find_step(self, from_step: object, run_number: int) -> Step:
        if isinstance(from_step, (tuple, list)) and len(from_step) == 2:
            name, count = from_step
        else:
            name, count = from_step, 1
        if not isinstance(name, str) or isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise WorkflowError(f"from_step must be a step name or (name, count) with count >= 1, got {from_step!r}")
        if "\x00" in name or len(name) > 256 or count > 2**31:
            raise WorkflowError(
                f"no step can be named {name!r:.80} (occurrence {count}): names are 1 to 256 characters, no NUL, "
                f"and occurrences at most {2**31}"
            )
        candidates = Step.objects.filter(instance_id=self._pk, run_number=run_number, name=name, occurrence=count)
        step = candidates.filter(kind=StepKind.DO).first() or candidates.order_by("seq").first()
        if step is None:
            raise InvalidState(
                f'(instance.cannot_restart) Step "{name}" (occurrence {count}) not found in execution history'
            )
        return step


def _encode_params(params: Any) -> str:
    from workflows.api import _encode_create_params

    return _encode_create_params(params)
