"""Durable workflows for Django.

    from workflows import Workflow, NonRetryableError, WorkflowTimeoutError, WorkflowError, get_workflow

Only model-free modules are imported here, so this package can be imported while Django
is still loading apps (e.g. from an app's workflows.py).
"""
from workflows.definition import Workflow
from workflows.errors import NonRetryableError, WorkflowError, WorkflowTimeoutError

__all__ = [
    "Workflow", "NonRetryableError", "WorkflowTimeoutError", "WorkflowError", "get_workflow",
    "list_workflows", "list_instances", "list_pending_waits", "workflow_names",
]


def get_workflow(name: str):
    """The handle of a registered workflow: ``create``, ``create_batch``, ``get``."""
    from workflows.api import get_workflow as _get_workflow

    return _get_workflow(name)


def list_workflows(names=None):
    """Every registered workflow (or only ``names``) with instance counts per status and its latest activity."""
    from workflows.queries import list_workflows as _list_workflows

    return _list_workflows(names)


def list_instances(workflow=None, **filters):
    """A page of instances across workflows, newest first: ``{"instances", "next_cursor"}``."""
    from workflows.queries import list_instances as _list_instances

    return _list_instances(workflow, **filters)


def list_pending_waits(**filters):
    """Every wait_for_event waiting now, soonest deadline first (what the approval inbox shows)."""
    from workflows.queries import list_pending_waits as _list_pending_waits

    return _list_pending_waits(**filters)


def workflow_names() -> list[str]:
    """The names of the registered workflows (no database query)."""
    from workflows.definition import registered

    return sorted(registered())
