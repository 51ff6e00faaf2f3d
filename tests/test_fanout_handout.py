"""Handing steps out (fan-out): the steps a gather hands out at one moment are queued in one
transaction, and the local steps' callbacks start only once it is committed.

One transaction lets the first worker to claim find every handed-out step and take them as
one batch. Waiting for it keeps a CPU-bound local callback from holding the GIL while that
transaction's statements each need it back. The database write is replaced here by a
recorder, so the test sees exactly which writes were made and in what order.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from workflows.engine.fanout import FanOut, queue_remote_steps
from workflows.engine.rows import StepRow
from workflows.states import StepStatus


class Recorder:
    """Stands in for the replay pass and the instance run: records the writes and events."""

    def __init__(self, fail=None):
        self.log = []
        self.lease = object()
        self.fail = fail

    async def store(self, fn, lease, handouts, now):
        assert fn is queue_remote_steps and lease is self.lease
        self.log.append(("queue", [key[1] for key, *_ in handouts]))
        await asyncio.sleep(0.01)  # a commit takes a while; local steps must not start meanwhile
        if self.fail:
            raise self.fail
        return [StepRow(100 + seq, *key, seq, StepStatus.QUEUED) for key, _, seq, _ in handouts]


def hand_out_and_run_locally(recorder, handed_out, local, fanout=None):
    fanout = fanout or FanOut(recorder, hands_out=True)

    async def hand_out(name, seq):
        row = await fanout._hand_out(recorder, (("do", name, 1), None, seq, {}))
        recorder.log.append(("handed out", name, row.id))

    async def run_local(name):
        await asyncio.sleep(0)  # the bridge's settle
        await fanout.settled()
        recorder.log.append(("callback starts", name))

    async def gather():
        return await asyncio.gather(
            *(run_local(name) for name in local),
            *(hand_out(name, seq) for seq, name in enumerate(handed_out, start=1)),
            return_exceptions=True,
        )

    # A thread of its own: Playwright's sync API (the browser tests) leaves a running loop
    # on the test thread, where asyncio.run refuses to start.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, gather()).result()


def test_the_steps_a_gather_hands_out_together_are_queued_in_one_transaction():
    recorder = Recorder()
    hand_out_and_run_locally(recorder, ["cpu 4", "cpu 5", "cpu 6", "cpu 7"], [])
    assert recorder.log[0] == ("queue", ["cpu 4", "cpu 5", "cpu 6", "cpu 7"])
    assert sorted(recorder.log[1:]) == [("handed out", f"cpu {i}", 100 + i - 3) for i in range(4, 8)]


def test_local_callbacks_start_only_after_the_hand_out_is_committed():
    recorder = Recorder()
    hand_out_and_run_locally(recorder, ["cpu 2", "cpu 3"], ["cpu 0", "cpu 1"])
    first_callback = next(i for i, entry in enumerate(recorder.log) if entry[0] == "callback starts")
    assert recorder.log[0] == ("queue", ["cpu 2", "cpu 3"])
    assert first_callback > 0
    assert [entry[1] for entry in recorder.log if entry[0] == "callback starts"] == ["cpu 0", "cpu 1"]


def test_a_failed_hand_out_reaches_every_step_of_its_batch_and_the_next_one_starts_afresh():
    recorder = Recorder(fail=RuntimeError("database went away"))
    fanout = FanOut(recorder, hands_out=True)
    outcomes = hand_out_and_run_locally(recorder, ["cpu 2", "cpu 3", "cpu 4"], ["cpu 0"], fanout)
    errors = [o for o in outcomes if isinstance(o, RuntimeError)]
    assert len(errors) == 3, outcomes
    assert ("callback starts", "cpu 0") in recorder.log, "a local step is not held up by the failure"
    recorder.fail = None
    hand_out_and_run_locally(recorder, ["cpu 5"], [], fanout)
    assert recorder.log[-2:] == [("queue", ["cpu 5"]), ("handed out", "cpu 5", 101)]


def test_a_hand_out_that_starts_while_an_earlier_one_fails_is_still_queued():
    """A later branch hands its step out while the earlier batch's write is failing: the
    failure reaches the earlier batch only, and the later step is queued in a batch of its own."""

    class FailsOnceWhenReleased(Recorder):
        def __init__(self):
            super().__init__()
            self.started, self.release = asyncio.Event(), asyncio.Event()

        async def store(self, fn, lease, handouts, now):
            if not self.started.is_set():
                self.log.append(("queue", [key[1] for key, *_ in handouts]))
                self.started.set()
                await self.release.wait()
                raise RuntimeError("database went away")
            return await super().store(fn, lease, handouts, now)

    recorder = FailsOnceWhenReleased()
    fanout = FanOut(recorder, hands_out=True)

    async def hand_out(name, seq):
        return await fanout._hand_out(recorder, (("do", name, 1), None, seq, {}))

    async def later():
        await recorder.started.wait()
        recorder.release.set()  # the earlier write fails on the loop's next turn, before this one goes on
        return await hand_out("cpu 9", 9)

    async def scenario():
        return await asyncio.gather(hand_out("cpu 4", 4), later(), return_exceptions=True)

    with ThreadPoolExecutor(max_workers=1) as thread:
        earlier, late = thread.submit(asyncio.run, scenario()).result()
    assert isinstance(earlier, RuntimeError)
    assert isinstance(late, StepRow) and late.name == "cpu 9", late
    assert recorder.log == [("queue", ["cpu 4"]), ("queue", ["cpu 9"])]
