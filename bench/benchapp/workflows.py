"""Workflows the benchmarks run."""

import asyncio
import time

from workflows import Workflow


class Sequential(Workflow):
    """``n`` no-op steps in a row: the per-step cost of durability."""

    name = "bench-sequential"

    async def run(self, event, step):
        for i in range(event.payload["n"]):
            await step.do(f"s{i}", lambda: None)
        return event.payload["n"]


class ThreeSteps(Workflow):
    name = "bench-three"

    async def run(self, event, step):
        await step.do("a", lambda: 1)
        await step.do("b", lambda: 2)
        return await step.do("c", lambda: 3)


class WaitThenStep(Workflow):
    """The time the step after a wait starts is the end of the send_event -> resume latency."""

    name = "bench-wait"

    async def run(self, event, step):
        await step.wait_for_event("wait", type="go", timeout="1h")
        return await step.do("resumed", time.time)


class SleepThenStep(Workflow):
    name = "bench-sleep"

    async def run(self, event, step):
        await step.sleep_until("until", event.payload["until"])
        return await step.do("woke", time.time)


def burn(seconds_of_work: int) -> int:
    """Pure-Python CPU work (holds the GIL)."""
    total = 0
    for i in range(seconds_of_work):
        total = (total * 31 + i) % 1_000_000_007
    return total


def burn_measured(seconds_of_work: int) -> float:
    """``burn``, returning the CPU time its thread spent on it (not time spent waiting for the GIL)."""
    started = time.thread_time()
    burn(seconds_of_work)
    return time.thread_time() - started


class FanOut(Workflow):
    """Returns each step's own CPU time: the run's ideal wall time is their sum over the cores."""

    name = "bench-fanout"

    async def run(self, event, step):
        work = event.payload["work"]
        steps = (step.do(f"cpu {i}", lambda: burn_measured(work)) for i in range(event.payload["n"]))
        return await asyncio.gather(*steps)


class Timer(Workflow):
    """Parked in a sleep by bench/timers.py (rows written with SQL), then one step."""

    name = "bench-timer"

    async def run(self, event, step):
        await step.sleep("nap", 60)
        return await step.do("woke", time.time)
