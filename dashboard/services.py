"""The dashboard's rules, apart from the HTTP plumbing: what an operator's action does and
records, what the overview and the inbox show. Views parse a request, call one of these,
and render. Everything here goes through the public API (``workflows``), as a user's code
would.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from croniter import croniter

from workflows import (
    ACTIVE,
    WorkflowError,
    get_workflow,
    list_versions,
    list_workflows,
    now,
    workflow_class,
)

log = logging.getLogger("dashboard")

# --------------------------------------------------------------------------- overview


def overview_workflows() -> list[dict[str, Any]]:
    """Every workflow with its counts per status, how many are active (queued or running), and
    its versions: the current one, and older ones still draining or drained (finished
    instances only, until retention prunes them)."""
    workflows = list_workflows()
    versions: dict[str, list[dict[str, Any]]] = {}
    for row in list_versions():
        versions.setdefault(row["workflow"], []).append(row)
    for w in workflows:
        w["active"] = sum(w["counts"][status] for status in ACTIVE)
        w["versions"] = versions.get(w["name"], [])
    return workflows


def workflow_page(name: str) -> dict[str, Any]:
    """What a workflow's page shows: its description, counts, schedules and next firings."""
    info = list_workflows([name])[0]
    cls = workflow_class(name)
    doc = inspect.cleandoc(cls.__doc__ or "") if cls is not None else ""
    schedules = []
    for cron in getattr(cls, "schedules", None) or []:
        try:
            upcoming = croniter(cron, now()).get_next(datetime)
        except (ValueError, KeyError):
            upcoming = None
        schedules.append({"cron": cron, "next": upcoming})
    return {
        **info,
        "paragraphs": [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()],
        "schedules": schedules,
        "active": sum(info["counts"][status] for status in ACTIVE),
        "total": sum(info["counts"].values()),
    }


def start_instance(workflow: str, instance_id: str | None, params: Any) -> str:
    """Create an instance for an operator; returns its id (WorkflowError if refused). The engine
    audits it as the logged-in user (``dashboard.middleware``)."""
    return get_workflow(workflow).create(id=instance_id or None, params=params).id


# --------------------------------------------------------------------------- operator actions


INSTANCE_ACTIONS = (
    "pause", "resume", "terminate", "restart", "retry", "retry-with-params", "run-now", "send-event", "resolve",
)  # fmt: skip


def run_action(workflow: str, instance_id: str, name: str, data: dict[str, Any]) -> str:
    """Perform an operator's action on one instance (the engine audits it); returns what to tell them.

    Raises WorkflowError (nothing done, nothing recorded) when the action is not possible.
    """
    handle = get_workflow(workflow).get(instance_id)
    if name in ("retry", "retry-with-params"):
        failed = handle.failed_step()
        if failed is None:
            raise WorkflowError("This instance has no failed step to retry from.")
        if name == "retry-with-params":
            handle.restart(from_step=failed, params=data["params"])
            return f"Retrying from step '{failed[0]}' with the edited params; the old ones are in the activity log."
        handle.restart(from_step=failed)
        message = f"Retrying from step '{failed[0]}': earlier results are kept."
    elif name == "resolve":
        handle.resolve_step(data["step"], data["output"], count=data["count"], note=data["note"])
        message = f"Step '{data['step']}' resolved by hand; the instance carries on from there."
    elif name == "run-now":
        woken = handle.retry_now()
        if not woken:
            raise WorkflowError("No step is waiting for a retry.")
        message = f"{woken} step(s) will run now instead of after their retry delay."
    elif name == "send-event":
        handle.send_event(data["type"], data["payload"])
        message = f"Event '{data['type']}' sent."
    elif name == "restart":
        handle.restart()
        message = "Restarted from the beginning."
    else:
        getattr(handle, name)()
        message = f"{name.capitalize()} requested; the instance is now {handle.status()['status']}."
    return message


@dataclass
class BulkResult:
    done: int = 0
    problems: list[str] = field(default_factory=list)


def bulk_action(action: str, refs: list[tuple[str, str]]) -> BulkResult:
    """Pause, resume or terminate each ``(workflow, instance id)`` (the engine audits each one)."""
    result = BulkResult()
    for workflow, instance_id in refs:
        try:
            getattr(get_workflow(workflow).get(instance_id), action)()
        except WorkflowError as exc:
            result.problems.append(f"{workflow}/{instance_id}: {exc}")
            continue
        result.done += 1
    return result
