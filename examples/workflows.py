"""The seed document's patterns (../shared/reference/workflow-patterns.md) in Python.

Each class is a faithful translation; where the Python version does more than the seed
(checking the approval before publishing, an idempotent child start), a comment says so.
The bindings (self.env.BUCKET, DB, AI, EMAIL, CHILD_WORKFLOW) are configured in settings.
"""

import asyncio
import json
import os
import time

from django import forms

from workflows import DuplicateInstanceId, Workflow, WorkflowTimeoutError, approvals


def send_email(env, to, subject):
    return env.EMAIL.send(to=to, subject=subject, body=subject)


# 1. Image processing ---------------------------------------------------------------------


class ImageProcessingWorkflow(Workflow):
    """Describe an uploaded image with AI, wait for a human's approval, then publish it."""

    name = "image-processing"

    async def run(self, event, step):
        key = event.payload["imageKey"]
        image_data = await step.do("fetch", lambda: self.env.BUCKET.get(key).read())
        description = await step.do(
            "generate description",
            lambda: self.env.AI.run(
                "@cf/llava-hf/llava-1.5-7b-hf",
                {"image": list(image_data), "prompt": "Describe this image", "max_tokens": 50},
            ),
        )
        # The seed waits for an "approved" event; here the approval is a request people decide
        # in the inbox, seeing the image itself and what the AI said about it.
        approval = await step.wait_for_approval(
            "await approval",
            title="Publish {imageKey}?",
            details={"Image": approvals.Image(key), "What the AI saw": description["description"]},
            timeout="24h",
        )
        # Beyond the seed: a rejected image is not published.
        if not approval["payload"]["approved"]:
            return {"published": False, "description": description["description"]}
        await step.do("publish", lambda: self.env.BUCKET.put(f"public/{key}", image_data))
        return {"published": f"public/{key}", "description": description["description"]}


# 2. User lifecycle -----------------------------------------------------------------------


class UserLifecycleWorkflow(Workflow):
    """Welcome a user, wait out the 7-day trial, and remind them if they did not convert."""

    name = "user-lifecycle"

    async def run(self, event, step):
        await step.do("welcome email", lambda: send_email(self.env, event.payload["email"], "Welcome!"))
        await step.sleep("trial period", "7 days")

        def check_conversion():
            user = (
                self.env.DB.prepare("SELECT subscription_status FROM users WHERE id = ?")
                .bind(event.payload["userId"])
                .first()
            )
            return user is not None and user["subscription_status"] == "active"

        has_converted = await step.do("check conversion", check_conversion)
        if not has_converted:
            await step.do(
                "trial expiration email", lambda: send_email(self.env, event.payload["email"], "Trial ending")
            )
        return {"converted": has_converted}


# 3. Data pipeline ------------------------------------------------------------------------


def normalize_data(item):
    return json.dumps({k: item[k] for k in sorted(item) if k != "id"}, sort_keys=True).lower()


class DataPipelineWorkflow(Workflow):
    """Extract JSON from a URL (retried), transform it, stage it in the bucket, load it into records."""

    name = "data-pipeline"

    async def run(self, event, step):
        def extract():
            # Through the HTTP binding: http(s) only, no internal addresses, size and time capped.
            response = self.env.HTTP.get(event.payload["sourceUrl"])
            if response.status >= 400:
                raise ConnectionError(f"Fetch failed: HTTP {response.status}")
            return response.json()

        raw_data = await step.do("extract", extract, retries={"limit": 10, "delay": "30s", "backoff": "exponential"})
        transformed = await step.do(
            "transform", lambda: [{"id": item["id"], "normalized": normalize_data(item)} for item in raw_data]
        )

        def store():
            # The seed names the file with Date.now(); inside a step that is safe (the result is kept).
            key = f"processed/{int(time.time() * 1000)}.json"
            self.env.BUCKET.put(key, json.dumps(transformed))
            return {"key": key}

        data_ref = await step.do("store", store)

        def load():
            data = self.env.BUCKET.get(data_ref["key"]).json()
            for i in range(0, len(data), 100):
                self.env.DB.batch(
                    [
                        self.env.DB.prepare("INSERT INTO records VALUES (?, ?)").bind(item["id"], item["normalized"])
                        for item in data[i : i + 100]
                    ]
                )
            return len(data)

        loaded = await step.do("load", load)
        return {"loaded": loaded, "ref": data_ref}


# 4. Human-in-the-loop approval -----------------------------------------------------------


class ApprovalWorkflow(Workflow):
    """Record an approval request, wait up to 48 hours for a decision, act on it."""

    name = "approval"

    async def run(self, event, step):
        db = self.env.DB
        await step.do(
            "create approval",
            lambda: (
                db.prepare("INSERT INTO approvals (id, user_id, status) VALUES (?, ?, ?)")
                .bind(event.instance_id, event.payload["userId"], "pending")
                .run()
            ),
        )
        try:
            approval = await step.wait_for_approval(
                "wait for approval",
                requested_by=event.payload["userId"],  # whoever asked never decides their own request
                title="A request from {userId}: {summary}",
                timeout="48h",
            )
            if approval["payload"]["approved"]:  # the seed's approval.approved
                await step.do(
                    "process approval",
                    lambda: (
                        db.prepare("UPDATE approvals SET status = ? WHERE id = ?")
                        .bind("approved", event.instance_id)
                        .run()
                    ),
                )
                return "approved"
            await step.do(
                "handle rejection",
                lambda: (
                    db.prepare("UPDATE approvals SET status = ? WHERE id = ?").bind("rejected", event.instance_id).run()
                ),
            )
            return "rejected"
        except WorkflowTimeoutError:
            await step.do(
                "auto reject",
                lambda: (
                    db.prepare("UPDATE approvals SET status = ? WHERE id = ?")
                    .bind("auto-rejected", event.instance_id)
                    .run()
                ),
            )
            return "auto-rejected"


# Beyond the seed: approvals routed to a group, with a quorum, a form and no self-approval ---


class ExpenseDecisionForm(forms.Form):
    """What a finance approver fills in when approving an expense."""

    approved_amount = forms.DecimalField(label="Approved amount (EUR)", max_digits=10, decimal_places=2, min_value=0)
    cost_centre = forms.ChoiceField(
        label="Cost centre", choices=[("ops", "Operations"), ("rnd", "Research"), ("sales", "Sales")]
    )


class ExpenseWorkflow(Workflow):
    """Route an expense to finance: two approvals above 1,000 EUR, a form, never the requester.

    Finance is reminded every 8 hours; after a day the directors are added and told; an
    expense nobody decides in two days is rejected. (The params may shorten these, as the
    demo does so you can watch them happen.)
    """

    name = "expense"
    search_attributes = ("userId",)

    async def run(self, event, step):
        p = event.payload
        details = {"Amount (EUR)": p["amount"], "Summary": p["summary"]}
        if p.get("receiptKey"):
            details["Receipt"] = approvals.Image(p["receiptKey"])
        decision = await step.wait_for_approval(
            "finance approval",
            approvers=["group:finance"],
            quorum=2 if p["amount"] > 1000 else 1,
            requested_by=p["userId"],
            form=ExpenseDecisionForm,
            title="Expense from {userId}: {summary}",
            details=details,
            timeout=p.get("timeout", "48h"),
            remind_every=p.get("remindEvery", "8h"),
            escalate_after=p.get("escalateAfter", "24h"),
            escalate_to=["group:directors"],
            on_timeout="reject",
        )
        outcome = decision["payload"]
        if not outcome["approved"]:
            return {"paid": False, "rejected_by": outcome["by"], "reason": outcome["comment"]}
        data = outcome["data"]
        paid = await step.do(
            "book the expense",
            lambda: {"amount": data["approved_amount"], "cost_centre": data["cost_centre"], "to": p["userId"]},
        )
        return {"paid": True, **paid, "approved_by": [d["by"] for d in outcome["decisions"]]}


# Beyond the seed: a machine-to-machine signal, answered by send_event (not an approval) ---


class OrderWorkflow(Workflow):
    """Wait for the payment provider's webhook, then ship; cancel when no payment comes within an hour."""

    name = "order"
    search_attributes = ("orderId",)  # find "the instance for order A-7" from the list page

    async def run(self, event, step):
        p = event.payload
        try:
            payment = await step.wait_for_event("payment", type="payment-received", timeout="1 hour")
        except WorkflowTimeoutError:
            await step.do("cancel", lambda: {"cancelled": p["orderId"]})
            return {"shipped": False}
        paid = payment["payload"]
        await step.do("ship", lambda: {"order": p["orderId"], "paid": paid.get("amount")})
        return {"shipped": True}


# 5. Fan-out ------------------------------------------------------------------------------


def process_file(data: bytes) -> dict:
    """CPU-bound work on a file's bytes (a checksum in pure Python, repeated)."""
    rounds = 1 + len(data) // 4096
    digest = 0
    for _ in range(2000 * rounds):
        for byte in data[:4096]:
            digest = (digest * 31 + byte) % 1_000_000_007
    return {"size": len(data), "digest": digest}


class FanOutWorkflow(Workflow):
    """Process every object under a prefix, each in its own step, in parallel across workers."""

    name = "fan-out"

    async def run(self, event, step):
        prefix = event.payload.get("prefix", "incoming/")
        files = await step.do("list", lambda: self.env.BUCKET.list(prefix=prefix))

        def process(key):
            def run():
                started = time.time()
                result = process_file(self.env.BUCKET.get(key).read())
                return {"key": key, **result, "pid": os.getpid(), "started": started, "ended": time.time()}

            return run

        results = await asyncio.gather(
            *(step.do(f"process {i}", process(f["key"])) for i, f in enumerate(files["objects"]))
        )
        return {"processed": len(results), "bytes": sum(r["size"] for r in results)}


# 6. Parent-child -------------------------------------------------------------------------


class ParentWorkflow(Workflow):
    """Start a child workflow inside a step, then carry on without waiting for it."""

    name = "parent"

    async def run(self, event, step):
        def start_child():
            child_id = f"child-{event.instance_id}"
            try:
                return self.env.CHILD_WORKFLOW.create(id=child_id, params={"data": event.payload.get("data")})
            except DuplicateInstanceId:
                # Beyond the seed: if the step is retried after the child was created (a crash
                # before the result was saved), reuse that child instead of failing.
                return self.env.CHILD_WORKFLOW.get(child_id)

        child = await step.do("start child", start_child)
        await step.do("other work", lambda: f"Child started: {child.id}")
        return {"child": child.id}


class ChildWorkflow(Workflow):
    """Started by the parent workflow; records the data it was given."""

    name = "child"

    async def run(self, event, step):
        return await step.do("child work", lambda: {"received": event.payload.get("data")})


# 7. Race ---------------------------------------------------------------------------------


async def slow_operation():
    await asyncio.sleep(2)
    return "slow"


async def fast_operation():
    await asyncio.sleep(0.1)
    return "fast"


class RaceWorkflow(Workflow):
    """The first of two operations wins, decided inside one step so the winner is stored.

    Racing two steps directly (race-naive) is not replay-stable: both keep running and are
    cached, so a replay may pick another "winner". Racing the operations inside one step
    stores the winner itself.
    """

    name = "race"

    async def run(self, event, step):
        async def race():
            tasks = [asyncio.ensure_future(slow_operation()), asyncio.ensure_future(fast_operation())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            return done.pop().result()

        winner = await step.do("race", race)
        await step.sleep("let the loser finish", 1)  # a replay after this still sees the same winner
        return {"winner": winner}


class NaiveRaceWorkflow(Workflow):
    """The seed's literal version: asyncio.wait over two steps. Both steps run and are cached."""

    name = "race-naive"

    async def run(self, event, step):
        a = asyncio.ensure_future(step.do("option A", slow_operation))
        b = asyncio.ensure_future(step.do("option B", fast_operation))
        done, _ = await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        return {"winner": done.pop().result()}


# 8. Scheduled chain ----------------------------------------------------------------------


class DailyWorkflow(Workflow):
    """Created every day at 09:00 UTC as daily-<scheduled time>; follows up a week later."""

    name = "daily"
    schedules = ["0 9 * * *"]
    schedule_id_prefix = "daily"

    async def run(self, event, step):
        await step.do("daily task", lambda: {"slot": event.schedule["scheduled_time"] if event.schedule else None})
        await step.sleep("wait 7 days", "7 days")
        await step.do("weekly followup", lambda: "done")
        return "done"


# Beyond the seed: a workflow that fails for good, for the dashboard's retry button.
class FlakyExportWorkflow(Workflow):
    """Exports until the export service is switched off: shows retries, a failed step and its fix.

    The demo starts with the service off, so the step fails three times and the instance
    errors. Switch it on (Admin > Demo switches, or `python manage.py demo_switch
    export-service on`), then press "Retry from failed step" on the instance's page, or
    retry the whole failed cohort from the list (filter "Failed at step: export", then
    "Apply to all matching"), or resolve the step by hand with the output you type.
    """

    name = "flaky-export"
    search_attributes = ("batch",)

    async def run(self, event, step):
        def export():
            from examples.models import DemoSwitch

            if not DemoSwitch.is_on("export-service"):
                raise ConnectionError(
                    "the export service is unavailable: switch it on with "
                    "`python manage.py demo_switch export-service on` (or in Admin > Demo switches), "
                    "then retry from the failed step"
                )
            return "exported"

        return await step.do("export", export, retries={"limit": 2, "delay": "5s", "backoff": "constant"})
