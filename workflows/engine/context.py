"""The objects ``run(event, step)`` and step callbacks receive.

``WorkflowEvent`` is the first argument of ``run``; ``WorkflowStep`` (``async def run``) or
``SyncWorkflowStep`` (``def run``) the second; ``StepContext`` the optional argument of a
step callback. They validate what the user passes and hand the work to the replay pass.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from workflows.durations import MAX_SLEEP_SECONDS, parse_bounded
from workflows.validation import check_event_type
from workflows.values import freeze

if TYPE_CHECKING:
    from workflows.engine.replay import ReplayPass


class WorkflowEvent:
    """The first argument of run(): read-only params and who/when this instance is."""

    __slots__ = ("_payload", "instance_id", "workflow_name", "timestamp", "schedule")

    def __init__(
        self, payload: Any, instance_id: str, workflow_name: str, timestamp: datetime, schedule: dict | None = None
    ) -> None:
        self._payload = freeze(payload)
        self.instance_id = instance_id
        self.workflow_name = workflow_name
        self.timestamp = timestamp
        self.schedule = freeze(schedule)

    @property
    def payload(self) -> Any:
        return self._payload

    def __repr__(self) -> str:
        return f"<WorkflowEvent {self.workflow_name}/{self.instance_id}>"


class StepContext:
    """The optional argument of a step callback: ``ctx.attempt``, ``ctx.step.name/count``, ``ctx.config``."""

    def __init__(self, name: str, count: int, attempt: int, config: dict) -> None:
        self.step = SimpleNamespace(name=name, count=count)
        self.attempt = attempt
        self.config = config  # a fresh copy (storable_config): changing it changes nothing

    def __repr__(self) -> str:
        return f"<StepContext {self.step.name}-{self.step.count} attempt {self.attempt}>"


@functools.lru_cache(maxsize=4096)
def _takes_argument(fn: Callable) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    # A parameter with a default (``def add(i=i)``, the loop-closure idiom) is not asking for ctx.
    return any(
        p.kind == p.VAR_POSITIONAL or (p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)
        for p in parameters
    )


def takes_ctx(fn: Callable) -> bool:
    """Whether a step callback wants the StepContext (it has a required positional parameter)."""
    if type(fn) is types.FunctionType:
        # The common case (a def or a lambda, often a new closure per call) read straight
        # from its code: what inspect.signature would say, without building a Signature.
        code = fn.__code__
        return bool(code.co_flags & inspect.CO_VARARGS) or code.co_argcount > len(fn.__defaults__ or ())
    try:
        return _takes_argument(fn)
    except TypeError:  # unhashable callable
        return _takes_argument.__wrapped__(fn)


def _sleep_target(when: datetime | float) -> datetime:
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return datetime.fromtimestamp(when, tz=UTC)
    raise ValueError(f"invalid sleep_until time {when!r}: expected a datetime or seconds since the epoch")


class WorkflowStep:
    """The second argument of an ``async def run``: ``do``, ``sleep``, ``sleep_until``, ``wait_for_event``."""

    def __init__(self, replay: ReplayPass) -> None:
        self._replay = replay

    async def do(self, name: str, fn: Callable, *, retries: dict | None = None, timeout: Any = None) -> Any:
        return await self._replay.do(name, fn, retries, timeout)

    async def sleep(self, name: str, duration: Any) -> None:
        seconds = parse_bounded(duration, what="sleep duration", maximum=MAX_SLEEP_SECONDS)
        return await self._replay.sleep(name, lambda now: now + timedelta(seconds=seconds))

    async def sleep_until(self, name: str, when: datetime | float) -> None:
        target = _sleep_target(when)

        def wake(now: datetime) -> datetime:
            if (target - now).total_seconds() > MAX_SLEEP_SECONDS:
                raise ValueError(f"invalid sleep_until time {when!r}: more than 365 days ahead")
            return target

        return await self._replay.sleep(name, wake)

    async def wait_for_event(self, name: str, *, type: str, timeout: Any = "24 hours") -> dict:
        check_event_type(type)
        seconds = parse_bounded(timeout, what="wait_for_event timeout", minimum=1, maximum=MAX_SLEEP_SECONDS)
        return await self._replay.wait_for_event(name, type, seconds)

    async def wait_for_approval(
        self,
        name: str,
        *,
        approvers: list[str] | None = None,
        quorum: int = 1,
        requested_by: str | None = None,
        form: type | None = None,
        title: str | None = None,
        details: dict | None = None,
        timeout: Any = "24 hours",
        remind_every: Any = None,
        escalate_after: Any = None,
        escalate_to: list[str] | None = None,
        on_timeout: str = "error",
    ) -> dict:
        """Wait until people decide (see ``workflows.approvals``); returns ``{"type", "payload", "timestamp"}``.

        ``remind_every`` nudges the approvers who have not decided; ``escalate_after`` adds the
        ``escalate_to`` approvers and notifies them; ``on_timeout`` is what the deadline decides:
        "error" (``WorkflowTimeoutError``), "approve" or "reject".
        """
        from workflows.engine.approvals import build_spec

        spec = build_spec(
            name, approvers=approvers, quorum=quorum, requested_by=requested_by, form=form, title=title,
            details=details, timeout=timeout, remind_every=remind_every, escalate_after=escalate_after,
            escalate_to=escalate_to, on_timeout=on_timeout,
        )  # fmt: skip
        return await self._replay.wait_for_approval(name, spec)

    async def patched(self, patch_id: str) -> bool:
        """True on the path of new code, False for an instance whose history already went past
        this point before the patch existed; recorded, so every later replay agrees."""
        return await self._replay.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        """For the cleanup once every instance that took the old path has finished: refuses
        (a divergence) for an instance that recorded False."""
        self._replay.deprecate_patch(patch_id)

    async def set_attributes(self, values: dict[str, Any]) -> None:
        """Add or change this instance's search attributes (``{"order_id": "8812"}``), found by
        ``list_instances(attributes=...)``. Values are text or numbers (200 characters at most)."""
        from workflows.queries import check_attributes

        check_attributes(values)
        await self._replay.set_attributes(values)


class SyncWorkflowStep:
    """The step API for a ``def run``: the same operations, blocking until each is done."""

    def __init__(self, step: WorkflowStep, loop: asyncio.AbstractEventLoop) -> None:
        self._step = step
        self._loop = loop

    def _wait(self, coroutine: Coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def do(self, name: str, fn: Callable, *, retries: dict | None = None, timeout: Any = None) -> Any:
        return self._wait(self._step.do(name, fn, retries=retries, timeout=timeout))

    def sleep(self, name: str, duration: Any) -> None:
        return self._wait(self._step.sleep(name, duration))

    def sleep_until(self, name: str, when: datetime | float) -> None:
        return self._wait(self._step.sleep_until(name, when))

    def wait_for_event(self, name: str, *, type: str, timeout: Any = "24 hours") -> dict:
        return self._wait(self._step.wait_for_event(name, type=type, timeout=timeout))

    def wait_for_approval(self, name: str, **options: Any) -> dict:
        return self._wait(self._step.wait_for_approval(name, **options))

    def set_attributes(self, values: dict[str, Any]) -> None:
        return self._wait(self._step.set_attributes(values))

    def patched(self, patch_id: str) -> bool:
        return self._wait(self._step.patched(patch_id))

    def deprecate_patch(self, patch_id: str) -> None:
        async def on_the_loop() -> None:  # the replay's bookkeeping lives on the event loop
            self._step.deprecate_patch(patch_id)

        return self._wait(on_the_loop())
