"""A step's result rides along with the next step's start: one commit per step, nothing lost.

The bridge holds one deferred write; it is committed with the next job that can take it,
before any other job, or on its own after FLUSH_AFTER_SECONDS with no job at all.
"""

import asyncio
import contextvars
import threading
import time

import pytest

from tests.helpers import run, start, steps_of
from workflows.engine.bridge import FLUSH_AFTER_SECONDS, DatabaseBridge, absorbs


def serve(bridge, coroutine):
    return bridge.serve(lambda: coroutine)


def test_a_deferred_write_runs_before_the_next_job_that_cannot_take_it():
    bridge, done = DatabaseBridge(), []

    async def main():
        bridge.defer(done.append, "result of step 1")
        return await bridge.call(lambda: list(done))

    assert serve(bridge, main()) == ["result of step 1"]


def test_a_job_that_absorbs_it_receives_it_instead_of_it_running_first():
    bridge, done = DatabaseBridge(), []

    @absorbs
    def begin_next(*, deferred=None):
        return ("ran first" if done else "handed over", deferred.args)

    async def main():
        bridge.defer(done.append, "result")
        return await bridge.call(begin_next)

    assert serve(bridge, main()) == ("handed over", ("result",))
    assert done == []  # begin_next was responsible for writing it


def test_a_deferred_write_is_committed_on_its_own_when_no_job_follows_soon():
    bridge, done = DatabaseBridge(), []

    async def main():
        bridge.defer(lambda: done.append(time.monotonic()))
        deferred_at = time.monotonic()
        await asyncio.sleep(FLUSH_AFTER_SECONDS * 25)  # user code between steps, no database job
        return deferred_at, list(done)

    deferred_at, written = serve(bridge, main())
    assert len(written) == 1, "written while the loop was busy elsewhere, not only at the next job"
    assert written[0] >= deferred_at


def test_a_deferred_write_still_pending_when_the_run_ends_is_written():
    bridge, done = DatabaseBridge(), []

    async def main():
        bridge.defer(done.append, "last")

    serve(bridge, main())
    assert done == ["last"]


def test_the_error_of_a_deferred_write_reaches_the_next_job():
    bridge = DatabaseBridge()

    def lost():
        raise LookupError("the lease is gone")

    async def main():
        bridge.defer(lost)
        await asyncio.sleep(FLUSH_AFTER_SECONDS * 10)  # flushed while idle: the error waits
        with pytest.raises(LookupError, match="the lease is gone"):
            await bridge.call(lambda: "never runs")
        return await bridge.call(lambda: "the job after is unaffected")

    assert serve(bridge, main()) == "the job after is unaffected"


def test_runs_on_one_thread_share_its_loop_but_not_the_tasks_a_run_left_behind():
    cancelled = []

    async def leaves_a_task():
        async def lingering():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append("by the end of its run")
                raise

        asyncio.create_task(lingering())
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    async def looks_around():
        return asyncio.get_running_loop(), [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    first_loop = DatabaseBridge().serve(leaves_a_task)
    assert cancelled == ["by the end of its run"]
    second_loop, others = DatabaseBridge().serve(looks_around)
    assert second_loop is first_loop, "the loop is kept from one claim to the next"
    assert others == []


def test_a_context_variable_set_in_one_run_is_not_seen_by_the_next():
    flag = contextvars.ContextVar("flag", default="unset")

    async def sets_it():
        flag.set("set by the first run")

    async def reads_it():
        return flag.get()

    DatabaseBridge().serve(sets_it)
    assert DatabaseBridge().serve(reads_it) == "unset"


def test_a_run_can_be_served_from_code_running_inside_another_event_loop():
    async def answer():
        return 42

    async def notebook_cell():  # blocking code called while its own loop runs
        result = DatabaseBridge().serve(answer)
        await asyncio.sleep(0)  # and that loop carries on afterwards
        return result, asyncio.get_running_loop()

    results = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(notebook_cell())))
    thread.start()
    thread.join()
    answer_value, outer_loop = results[0]
    assert answer_value == 42 and outer_loop is not None


@pytest.mark.usefixtures("engine")
def test_every_step_result_is_stored_whether_it_rode_along_or_was_written_last(uid):
    instance = start("t-counter", {"steps": 4}, id=uid())
    assert run(instance)["status"] == "complete"
    assert [(s.name, s.status, s.result) for s in steps_of(instance)] == [
        (f"add {i}", "succeeded", str(i)) for i in range(4)
    ]
    assert all(s.ended_at is not None for s in steps_of(instance))
