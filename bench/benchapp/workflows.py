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


class FanOut(Workflow):
    name = "bench-fanout"

    async def run(self, event, step):
        work = event.payload["work"]
        results = await asyncio.gather(*(step.do(f"cpu {i}", lambda: burn(work)) for i in range(event.payload["n"])))
        return len(results)


class Timer(Workflow):
    """Parked in a sleep by bench/timers.py (rows written with SQL), then one step."""

    name = "bench-timer"

    async def run(self, event, step):
        await step.sleep("nap", 60)
        return await step.do("woke", time.time)
