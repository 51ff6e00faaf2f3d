"""Example workflows, loaded by the demo (discovered like any app's workflows.py)."""
from workflows import Workflow


def fetch_rows():
    """Stands in for an HTTP extract; rows are made locally so the demo works offline."""
    return [{"id": i, "value": i * i} for i in range(25)]


class DataPipeline(Workflow):
    """The README's example: a retried extract, a cool-down sleep, then a human approval."""

    name = "data-pipeline"

    async def run(self, event, step):
        raw = await step.do("extract", fetch_rows, retries={"limit": 10, "delay": "30s", "backoff": "exponential"})
        await step.sleep("cool down", event.payload.get("cool_down", "1 hour"))
        approval = await step.wait_for_event("wait for approval", type="approval-response", timeout="48h")
        return {"rows": len(raw), "approved": approval["payload"]["approved"]}
