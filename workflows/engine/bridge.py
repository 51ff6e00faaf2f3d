"""Run database work on the thread that owns the connection, for code on an event loop.

Django refuses ORM calls from a thread running an event loop, and a pytest-django test
keeps its data in the test thread's open transaction. So the replay runs its event loop in
a helper thread while the calling thread serves the loop's database jobs, in order, on its
own connection: the worker's connection in a worker, the test's transaction in a test.

A write may also be deferred (``defer``): the loop does not wait for it, and it is
committed together with the next job when that job says it can take it (``absorbs``:
a step's result with the next step's start, one commit instead of two), or before any
other job, or after ``FLUSH_AFTER_SECONDS`` with no job at all. Its error, if any, is
raised to the job it ran with.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

T = TypeVar("T")

# A database job: the function, its arguments, and the future (with its loop) to settle.
_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], asyncio.Future[Any], asyncio.AbstractEventLoop]

_STOP = object()

# How long a deferred write may wait for a job to ride along with: the window in which a
# killed worker loses a finished step's result (the step then runs again, as a step that
# was running when the worker died does).
FLUSH_AFTER_SECONDS = 0.002

log = logging.getLogger("workflows.engine")


@dataclass
class Deferred:
    """A write whose caller does not wait for it: ``fn(*args)`` on the serving thread."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def write(self) -> None:
        self.fn(*self.args)


def absorbs(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark a job function that takes the deferred write as ``deferred=`` (and commits it itself)."""
    fn.absorbs_deferred = True  # type: ignore[attr-defined]
    return fn


class DatabaseBridge:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._pending = 0  # touched only on the loop's thread
        self._deferred: Deferred | None = None  # touched only on the serving thread
        self._deferred_error: BaseException | None = None

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` without waiting for it (see the module's docstring)."""
        self._jobs.put(Deferred(fn, args))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the serving thread and return (or raise) its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending += 1
        self._jobs.put((fn, args, kwargs, future, loop))
        try:
            return await future
        finally:
            self._pending -= 1

    async def settled(self) -> None:
        """Return once no database job is waiting or running (after a few loop turns at most)."""
        await asyncio.sleep(0)
        while self._pending:
            await asyncio.sleep(0.001)

    def serve(self, coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``coroutine_factory()`` on a loop in a helper thread; serve its jobs here until it ends."""
        outcome: dict[str, Any] = {}

        def loop_thread() -> None:
            try:
                outcome["result"] = asyncio.run(coroutine_factory())
            except BaseException as exc:  # noqa: BLE001 (handed to the caller below)
                outcome["error"] = exc
            finally:
                self._jobs.put(_STOP)

        thread = threading.Thread(target=loop_thread, name="workflow-replay", daemon=True)
        thread.start()
        while True:
            job = self._next_job()
            if job is _STOP:
                break
            if isinstance(job, Deferred):
                self._hold(job)
                continue
            fn, args, kwargs, future, loop = cast(_Job, job)
            try:
                result = self._run_job(fn, args, kwargs)
            except BaseException as exc:  # noqa: BLE001 (raised again on the loop, in the caller)
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
        self._flush_quietly()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return cast(T, outcome.get("result"))

    def _next_job(self) -> _Job | object:
        """The next job; while a write is deferred, wait at most FLUSH_AFTER_SECONDS, then commit it."""
        while self._deferred is not None:
            try:
                return self._jobs.get(timeout=FLUSH_AFTER_SECONDS)
            except queue.Empty:
                self._flush_quietly(keep_error=True)
        return self._jobs.get()

    def _hold(self, deferred: Deferred) -> None:
        """Keep one deferred write; one already held is written first."""
        if self._deferred is not None:
            self._flush_quietly(keep_error=True)
        self._deferred = deferred

    def _run_job(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            if getattr(fn, "absorbs_deferred", False):
                return fn(*args, deferred=deferred, **kwargs)
            deferred.write()
        return fn(*args, **kwargs)

    def _flush_quietly(self, *, keep_error: bool = False) -> None:
        """Write the deferred write now; its error waits for the next job (or is logged at the end)."""
        deferred, self._deferred = self._deferred, None
        if deferred is None:
            return
        try:
            deferred.write()
        except BaseException as exc:  # noqa: BLE001 (handed to the next job, or logged)
            if keep_error:
                self._deferred_error = exc
            else:
                log.warning("a deferred write failed after its run ended: %r", exc)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
