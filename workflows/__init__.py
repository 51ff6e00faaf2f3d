"""Durable workflows for Django: the public API.

    from workflows import Workflow, NonRetryableError, WorkflowTimeoutError, WorkflowError, get_workflow

Everything a user, the dashboard, the HTTP API and the command line need is exported here;
other ``workflows.*`` modules are the engine's own. Only model-free modules are imported at
the top, so this package can be imported while Django is still loading apps (e.g. from an
app's ``workflows.py``); the functions import what they need when called.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows.actors import acting
from workflows.definition import Workflow
from workflows.errors import (
    DuplicateInstanceId,
    InstanceNotFound,
    InvalidEventType,
    InvalidInstanceId,
    InvalidState,
    NonDeterminismError,
    NonRetryableError,
    NotSerialisable,
    ValueTooLarge,
    WorkflowError,
    WorkflowFatalError,
    WorkflowInternalError,
    WorkflowNotFound,
    WorkflowTimeoutError,
)
from workflows.states import (
    ACTIVE,
    FINISHED,
    OPEN_STEP,
    PUBLIC_KIND,
    UNFINISHED,
    ApprovalStatus,
    Outcome,
    Permission,
    Status,
    StepKind,
    StepStatus,
)
from workflows.values import display_text, to_plain_json

if TYPE_CHECKING:
    from workflows.api import WorkflowHandle

__all__ = [
    # writing workflows
    "Workflow", "NonRetryableError", "WorkflowTimeoutError",
    # running them
    "get_workflow", "workflow_names", "workflow_class", "now",
    # reading state
    "list_workflows", "list_instances", "count_instances", "list_pending_waits", "count_pending_waits",
    "health_status", "metrics_text", "audit_log", "acting", "list_versions",
    # closed sets
    "Status", "StepStatus", "StepKind", "PUBLIC_KIND", "OPEN_STEP", "ACTIVE", "FINISHED", "UNFINISHED",
    "Permission", "Outcome", "ApprovalStatus",
    # values
    "to_plain_json", "display_text",
    # errors
    "WorkflowError", "WorkflowNotFound", "InstanceNotFound", "InvalidInstanceId", "DuplicateInstanceId",
    "InvalidEventType", "ValueTooLarge", "NotSerialisable", "InvalidState", "WorkflowFatalError", "NonDeterminismError",
    "WorkflowInternalError",
]  # fmt: skip


def get_workflow(name: str) -> WorkflowHandle:
    """The handle of a registered workflow: ``create``, ``create_batch``, ``get``, ``list``."""
    from workflows.api import get_workflow as _get_workflow

    return _get_workflow(name)


def workflow_names() -> list[str]:
    """The names of the registered workflows (no database query)."""
    from workflows.definition import registered

    return sorted(registered())


def workflow_class(name: str) -> type[Workflow] | None:
    """The registered ``Workflow`` subclass named ``name``, or None."""
    from workflows.definition import lookup

    return lookup(name)


def now() -> datetime:
    """The engine's current time (UTC). Tests may stop or move it (``workflows.testing``)."""
    from workflows import clock

    return clock.now()


def list_workflows(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every registered workflow (or only ``names``) with instance counts per status and its latest activity."""
    from workflows.queries import list_workflows as _list_workflows

    return _list_workflows(names)


def list_instances(workflow: str | None = None, **filters: Any) -> dict[str, Any]:
    """A page of instances across workflows, newest first: ``{"instances", "next_cursor"}``."""
    from workflows.queries import list_instances as _list_instances

    return _list_instances(workflow, **filters)


def count_instances(workflow: str | None = None, **filters: Any) -> int:
    """How many instances match ``list_instances``' filters (across every page)."""
    from workflows.queries import count_instances as _count_instances

    return _count_instances(workflow, **filters)


def list_pending_waits(**filters: Any) -> list[dict[str, Any]]:
    """Every wait_for_event waiting now, soonest deadline first."""
    from workflows.queries import list_pending_waits as _list_pending_waits

    return _list_pending_waits(**filters)


def count_pending_waits(**filters: Any) -> int:
    """How many wait_for_event steps are waiting now (of unfinished instances)."""
    from workflows.queries import count_pending_waits as _count_pending_waits

    return _count_pending_waits(**filters)


def list_versions() -> list[dict[str, Any]]:
    """Per workflow, the versions its instances were created with: unfinished instances on each,
    and whether it is the ``current`` code, ``draining`` (older, still running) or ``drained``."""
    from workflows.queries import list_versions as _list_versions

    return _list_versions()


def audit_log(**filters: Any) -> list[dict[str, Any]]:
    """Audit records oldest first: ``workflow``, ``instance_id``, ``actor``, ``since``, ``until``,
    ``after_id`` (paging), ``limit`` (see ``workflows.audit``)."""
    from workflows.audit import entries

    return entries(**filters)


def health_status() -> dict[str, Any]:
    """Workers alive, timer lag and queue depth (what ``/health/`` reports); raises if the database is down."""
    from workflows.health import status

    return status()


def metrics_text() -> str:
    """The engine's state in the Prometheus text format."""
    from workflows.health import metrics

    return metrics()
