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

_STOP = object()


class DatabaseBridge:
    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0  # touched only on the loop's thread

    async def call(self, fn, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the serving thread and return (or raise) its result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
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

    def serve(self, coroutine_factory):
        """Run ``coroutine_factory()`` on a loop in a helper thread; serve its jobs here until it ends."""
        outcome = {}

        def loop_thread():
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
            fn, args, kwargs, future, loop = job
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 (raised again on the loop, in the caller)
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")


def _settle(future, result, error):
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
