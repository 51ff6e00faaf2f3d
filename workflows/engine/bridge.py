"""Run database work on the thread that owns the connection, for code on an event loop.

Django refuses ORM calls from a thread running an event loop, and a pytest-django test
keeps its data in the test thread's open transaction. So the replay runs its event loop in
a helper thread while the calling thread serves the loop's database jobs, in order, on its
own connection: the worker's connection in a worker, the test's transaction in a test.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

T = TypeVar("T")

# A database job: the function, its arguments, and the future (with its loop) to settle.
_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], asyncio.Future[Any], asyncio.AbstractEventLoop]

_STOP = object()


class DatabaseBridge:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._pending = 0  # touched only on the loop's thread

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
            job = self._jobs.get()
            if job is _STOP:
                break
            fn, args, kwargs, future, loop = cast(_Job, job)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 (raised again on the loop, in the caller)
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return cast(T, outcome.get("result"))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
