"""Workflows the test suite runs, in-process and in real worker processes.

Behaviour comes only from params and step results (the worker is another process); side
effects go to the ledger so tests can count them.
"""

import asyncio
import os
import time

from django import forms

from tests.testapp.ledger import count, record
from workflows import NonRetryableError, Workflow, WorkflowTimeoutError


class Memo(Workflow):
    name = "t-memo"

    async def run(self, event, step):
        iid = event.instance_id
        record(iid, "replay")
        a = await step.do("a", lambda: record(iid, "a") or {"x": 1})
        n = await step.do("n", lambda: record(iid, "n"))
        await step.sleep("nap", "1s")
        return [a, n]


class SyncMemo(Workflow):
    """The same as t-memo, written with a plain ``def run``."""

    name = "t-sync-memo"

    def run(self, event, step):
        iid = event.instance_id
        a = step.do("a", lambda: record(iid, "a") or {"x": 1})
        step.sleep("nap", 1)
        b = step.do("b", lambda ctx: [ctx.step.name, ctx.step.count, ctx.attempt])
        return [a, b]


class Flaky(Workflow):
    """Fails the first ``fail`` attempts of a step, with the retry config from params."""

    name = "t-flaky"

    async def run(self, event, step):
        iid = event.instance_id
        p = event.payload

        def attempt(ctx):
            record(iid, "attempt", n=ctx.attempt)
            if ctx.attempt <= p["fail"]:
                raise ConnectionError(f"attempt {ctx.attempt} failed")
            return ctx.attempt

        return await step.do("call", attempt, retries=p.get("retries"))


class CatchFailure(Workflow):
    name = "t-catch"

    async def run(self, event, step):
        iid = event.instance_id

        def bad():
            record(iid, "bad")
            raise KeyError("missing")

        def fatal():
            record(iid, "fatal")
            raise NonRetryableError("card declined")

        caught = []
        for label, fn in (("bad", bad), ("fatal", fatal)):
            try:
                await step.do(label, fn, retries={"limit": 2, "delay": 0})
            except KeyError as exc:
                caught.append(["KeyError", str(exc)])
            except NonRetryableError as exc:
                caught.append(["NonRetryableError", str(exc)])
        await step.sleep("nap", 1)
        return caught


class Uncaught(Workflow):
    name = "t-uncaught"

    async def run(self, event, step):
        def fatal():
            raise NonRetryableError("no retry for you")

        await step.do("fatal", fatal)


class Waiter(Workflow):
    name = "t-waiter"

    async def run(self, event, step):
        got = []
        for i in range(event.payload.get("waits", 1)):
            try:
                received = await step.wait_for_event(
                    f"wait {i}", type=event.payload.get("type", "go"), timeout=event.payload.get("timeout", "1h")
                )
                got.append(received["payload"])
            except WorkflowTimeoutError as exc:
                got.append(f"timeout: {type(exc).__name__}")
        return got


class Parallel(Workflow):
    """Fan-out with gather: each branch sleeps in a thread, so they overlap in time."""

    name = "t-parallel"

    async def run(self, event, step):
        iid = event.instance_id

        def work(i):
            def callback():
                record(iid, "start", i=i)
                time.sleep(event.payload.get("seconds", 0.3))
                record(iid, "end", i=i)
                return i * i

            return callback

        return await asyncio.gather(*(step.do(f"part {i}", work(i)) for i in range(event.payload.get("n", 4))))


class ParallelSleeps(Workflow):
    name = "t-parallel-sleeps"

    async def run(self, event, step):
        async def branch(i, seconds):
            await step.sleep(f"sleep {i}", seconds)
            return await step.do(f"after {i}", lambda: i)

        return await asyncio.gather(branch(1, 60), branch(2, 3600))


class Bad(Workflow):
    """Misuse of the step API, chosen by params."""

    name = "t-bad"

    async def run(self, event, step):
        kind = event.payload["kind"]
        if kind == "set":
            return await step.do("set", lambda: {1, 2})
        if kind == "huge":
            return await step.do("huge", lambda: "x" * (2**20 + 1), retries={"limit": 1, "delay": 0})
        if kind == "huge-output":
            await step.do("small", lambda: 1)
            return "x" * (2**20 + 1)
        if kind == "config":
            return await step.do("c", lambda: 1, retries={"limit": 1, "delay": 0, "jitter": True})
        if kind == "name":
            return await step.do("x" * 257, lambda: 1)
        if kind == "event-type":
            return await step.wait_for_event("w", type="a.b")
        if kind == "limit":
            for i in range(5):
                await step.do("s", lambda i=i: i)
        if kind == "caught-set":
            try:
                await step.do("set", lambda: {1, 2})
            except Exception:  # noqa: BLE001 (the test checks that the engine, not run(), decides)
                pass
            return "carried on"
        return None


class Timeouts(Workflow):
    name = "t-timeout"

    async def run(self, event, step):
        async def slow():
            await asyncio.sleep(5)

        try:
            await step.do("slow", slow, timeout=0.2, retries={"limit": 1, "delay": 0})
        except WorkflowTimeoutError as exc:
            return str(exc)


class PlainTimeouts(Workflow):
    """A plain function past its timeout: in-process runs wait for it, then discard its result."""

    name = "t-timeout-plain"

    async def run(self, event, step):
        def slow():
            time.sleep(0.3)
            return "too late"

        try:
            return await step.do("slow", slow, timeout=0.2, retries={"limit": 0, "delay": 0})
        except WorkflowTimeoutError as exc:
            return str(exc)


class Counter(Workflow):
    """Many sequential steps; used for races between workers."""

    name = "t-counter"

    async def run(self, event, step):
        iid = event.instance_id
        total = 0
        for i in range(event.payload.get("steps", 5)):

            def add(i=i):
                record(iid, f"step-{i}")
                return i

            total += await step.do(f"add {i}", add)
        return total


class Crashy(Workflow):
    """The first attempt of "slow" blocks until the test kills the worker."""

    name = "t-crashy"

    async def run(self, event, step):
        iid = event.instance_id
        await step.do("before", lambda: record(iid, "before"))

        def slow(ctx):
            record(iid, "slow", attempt=ctx.attempt, pid=os.getpid())
            if ctx.attempt == 1:
                time.sleep(120)
            return ctx.attempt

        attempts = await step.do("slow", slow, retries={"limit": 3, "delay": 0})
        await step.do("after", lambda: record(iid, "after"))
        return attempts


class AlwaysCrash(Workflow):
    """Kills its own worker process on every attempt: a crash loop."""

    name = "t-always-crash"

    async def run(self, event, step):
        iid = event.instance_id

        def die():
            record(iid, "die", n=count(iid, "die"))
            os._exit(1)

        await step.do("die", die, retries={"limit": 100, "delay": 0})


class Parent(Workflow):
    """The seed's parent-child pattern: the child handle is a step result."""

    name = "t-parent"

    async def run(self, event, step):
        from workflows import get_workflow

        child = await step.do(
            "start child",
            lambda: get_workflow("t-counter").create(id=f"child-{event.instance_id}", params={"steps": 2}),
        )
        await step.sleep("let it run", 1)
        return await step.do("child status", lambda: [child.id, child.status()["status"]])


class ShortLived(Workflow):
    name = "t-short-lived"
    retention = "1 hour"

    async def run(self, event, step):
        return await step.do("one", lambda: 1)


class LongStep(Workflow):
    """One step that outlives several lease periods; the heartbeat must keep it."""

    name = "t-long-step"

    async def run(self, event, step):
        iid = event.instance_id

        def long():
            record(iid, "long")
            time.sleep(event.payload.get("seconds", 4))
            return "done"

        result = await step.do("long", long)
        if event.payload.get("then"):
            await step.do("after", lambda: record(iid, "after") or "after")
        return result


class Trial(Workflow):
    """A user-lifecycle shape: email, a 7-day sleep, a check, a manager's approval."""

    name = "t-trial"

    async def run(self, event, step):
        iid = event.instance_id

        def check_conversion():
            record(iid, "check")
            return False

        await step.do("welcome email", lambda: record(iid, "email", to=event.payload["email"]))
        await step.sleep("trial period", "7 days")
        converted = await step.do("check conversion", check_conversion, retries={"limit": 3, "delay": "30s"})
        approval = await step.wait_for_event("manager approval", type="approval", timeout="48h")
        if not converted and approval["payload"]["approved"]:
            return await step.do("extend trial", lambda: "extended")
        return "expired"


class SlowFanOut(Workflow):
    """Fan-out of staggered sleeps that record start and end, for crash tests."""

    name = "t-slow-fanout"

    async def run(self, event, step):
        iid = event.instance_id

        def part(i):
            def callback():
                record(iid, "start", i=i)
                time.sleep(0.5 + 0.6 * i)
                record(iid, "end", i=i)
                return i

            return callback

        return sum(await asyncio.gather(*(step.do(f"part {i}", part(i)) for i in range(event.payload.get("n", 8)))))


class Hostile(Workflow):
    """Puts markup in every place the dashboard shows: params, outputs, errors, events."""

    name = "t-hostile"

    async def run(self, event, step):
        html = event.payload["html"]
        await step.do("echo", lambda: {"html": html})
        try:
            await step.do("fail", lambda: (_ for _ in ()).throw(ValueError(html)), retries={"limit": 0, "delay": 0})
        except ValueError:
            pass
        await step.wait_for_event("signal", type="go", timeout="1h")
        return await step.wait_for_approval("decide", title="Decide on {html}", details={"html": html}, timeout="1h")


class Fixable(Workflow):
    """Fails until the marker file exists: the 'fix the cause, then retry from the failed step' flow."""

    name = "t-fixable"

    async def run(self, event, step):
        from tests.testapp.ledger import ledger_dir

        iid = event.instance_id
        marker = os.path.join(ledger_dir(), f"{iid}.fixed")
        first = await step.do("prepare", lambda: record(iid, "prepare") or "prepared")
        await step.sleep("pause", event.payload.get("pause", 0))

        def call():
            record(iid, "call")
            if not os.path.exists(marker):
                raise ConnectionError("the service is down")
            return "done"

        return [first, await step.do("call", call, retries={"limit": 1, "delay": 0})]


class Chaos(Workflow):
    """Sleeps, a step that fails once, fan-out and an event wait: for the chaos tests."""

    name = "t-chaos"

    async def run(self, event, step):
        iid = event.instance_id

        def effect(label, value):
            def callback():
                record(iid, label)
                return value

            return callback

        def flaky():
            record(iid, "flaky")
            if count(iid, "flaky") == 1:
                raise ConnectionError("first attempt fails")
            return 5

        a = await step.do("a", effect("a", 1))
        await step.sleep("nap", event.payload.get("nap", 1))
        parts = await asyncio.gather(*(step.do(f"part {i}", effect(f"part {i}", i)) for i in range(3)))
        b = await step.do("flaky", flaky, retries={"limit": 5, "delay": 0.5, "backoff": "constant"})
        received = await step.wait_for_event("go", type="go", timeout="10m")
        c = await step.do("c", effect("c", received["payload"]["n"]))
        return a + sum(parts) + b + c


class SpendForm(forms.Form):
    """A decision form: what an approver fills in (Decimal and date survive the round trip)."""

    approved_amount = forms.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    cost_centre = forms.ChoiceField(choices=[("ops", "Operations"), ("rnd", "Research")])
    review_on = forms.DateField(required=False)


class StrictRejectForm(forms.Form):
    reason = forms.CharField(max_length=200)
    validate_on_reject = True


class Approval(Workflow):
    """wait_for_approval with every option taken from the params, then a step that records the decision."""

    name = "t-approval"

    async def run(self, event, step):
        p = event.payload
        forms_by_name = {"spend": SpendForm, "strict": StrictRejectForm}
        try:
            decision = await step.wait_for_approval(
                p.get("step", "sign off"),
                approvers=p.get("approvers"),
                quorum=p.get("quorum", 1),
                requested_by=p.get("requested_by"),
                form=forms_by_name.get(p.get("form")),
                title=p.get("title"),
                details=p.get("details"),
                timeout=p.get("timeout", "1h"),
                remind_every=p.get("remind_every"),
                escalate_after=p.get("escalate_after"),
                escalate_to=p.get("escalate_to"),
                on_timeout=p.get("on_timeout", "error"),
            )
        except WorkflowTimeoutError as exc:
            return {"timed_out": str(exc)}
        payload = decision["payload"]
        await step.do("act", lambda: record(event.instance_id, "act", approved=payload["approved"]))
        return payload


class TwoApprovals(Workflow):
    """Two approvals in a row and one beside an event wait: each gets its own decision."""

    name = "t-two-approvals"

    async def run(self, event, step):
        first = await step.wait_for_approval("first", title="first of {n}")
        second = await step.wait_for_approval("second", title="second of {n}")
        return [first["payload"]["approved"], second["payload"]["approved"]]


def _refuse():
    raise NonRetryableError("the branch beside the approval failed")


class ParallelWaiters(Workflow):
    """Several waits for one event type at once: each must get an event of its own."""

    name = "t-parallel-waiters"

    async def run(self, event, step):
        waits = (step.wait_for_event(f"wait {i}", type="go", timeout="1h") for i in range(event.payload.get("n", 2)))
        return [received["payload"] for received in await asyncio.gather(*waits)]


class ApprovalBesideAFailure(Workflow):
    """An approval waits in one branch while the other fails for good: the instance errors."""

    name = "t-approval-beside-failure"

    async def run(self, event, step):
        await asyncio.gather(
            step.wait_for_approval("sign off", approvers=["user:ada"], timeout="1h", remind_every="10m"),
            step.do("doomed", _refuse),
        )


class Order(Workflow):
    """Searchable by customer (a param) and by order number (set from a step's result)."""

    name = "t-order"
    search_attributes = ("customer", "region")

    async def run(self, event, step):
        number = await step.do("number", lambda: f"ord-{event.payload.get('n', 0)}")
        await step.set_attributes({"order_id": number, "priority": event.payload.get("priority", 1)})
        await step.sleep("ship later", "1h")
        return number


# Which code t-lifecycle runs: tests switch it between replays, as a deploy would.
LIFECYCLE_CODE = {"variant": os.environ.get("T_LIFECYCLE_CODE", "v1")}


class Lifecycle(Workflow):
    """A 7-day lifecycle whose code changes under parked instances (the versioning tests)."""

    name = "t-lifecycle"

    async def run(self, event, step):
        import uuid

        variant = LIFECYCLE_CODE["variant"]
        iid = event.instance_id
        if variant == "v2-patched":
            if await step.patched("load-instead-of-fetch"):
                data = await step.do("load", lambda: record(iid, "load") or "loaded")
            else:
                data = await step.do("fetch", lambda: record(iid, "fetch") or "fetched")
        elif variant == "v2-renamed":
            data = await step.do("load", lambda: record(iid, "load") or "loaded")
        elif variant == "uuid":
            data = await step.do(f"fetch {uuid.uuid4()}", lambda: record(iid, "fetch") or "fetched")
        else:
            data = await step.do("fetch", lambda: record(iid, "fetch") or "fetched")
        if variant == "v2-inserted":
            await step.do("audit", lambda: record(iid, "audit"))
        await step.sleep("trial", "7 days")
        return [data, await step.do("notify", lambda: record(iid, "notify") or "notified")]


class Pinned(Workflow):
    """A workflow whose version is set by the environment: two deployments side by side."""

    name = "t-pinned"
    version = os.environ.get("T_PINNED_VERSION", "v1")

    async def run(self, event, step):
        return await step.do("where", lambda: {"pid": os.getpid(), "version": Pinned.version})


class Traced(Workflow):
    """A retry, a sleep, an event and a child workflow: everything a trace should show."""

    name = "t-traced"

    async def run(self, event, step):
        from workflows import get_workflow

        iid = event.instance_id

        def flaky():
            if count(iid, "flaky") == 0:
                record(iid, "flaky")
                raise ConnectionError("the first call fails")
            return "ok"

        first = await step.do("flaky", flaky, retries={"limit": 2, "delay": 0})
        await step.sleep("nap", "1s")
        answer = await step.wait_for_event("answer", type="go", timeout="1h")
        child = await step.do(
            "start child", lambda: get_workflow("t-counter").create(id=f"child-{iid}", params={"steps": 1})
        )
        return [first, answer["payload"], child.id]


class WakeThenRecord(Workflow):
    """Waits for "go", then a step of ``hold`` s that returns [its process, that process's parent]."""

    name = "t-wake-record"

    async def run(self, event, step):
        iid = event.instance_id
        await step.wait_for_event("go", type="go", timeout="1h")

        def after():
            record(iid, "after")
            time.sleep(event.payload.get("hold", 0))
            return [os.getpid(), os.getppid()]

        return await step.do("after", after)
