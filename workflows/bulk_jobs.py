"""Bulk jobs, the public API: an action on every instance matching a filter, run by the workers.

    from workflows import acting, bulk_jobs

    with acting(request.user, "dashboard"):
        job = bulk_jobs.start("retry", {"workflow": "data-pipeline", "status": "errored",
                                        "failed_step": "extract"})
    bulk_jobs.get(job.id).percent             # follow it; bulk_jobs.items(job.id, "refused")

Actions: ``retry`` (from the failed step), ``resolve`` (the filter's ``failed_step``, with
``output`` and ``note``), ``terminate``, ``pause``, ``resume``. Filters: those of
``list_instances`` (``workflow``, ``status``, ``statuses``, ``created_after``,
``created_before``, ``id_prefix``, ``attributes``, ``failed_step``, ``error_name``).
Each instance is acted on once, audited as the job's creator; see ``workflows.bulk``.
Importing this module loads no models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.bulk import Job

ACTIONS = ("retry", "resolve", "terminate", "pause", "resume")
__all__ = ["ACTIONS", "start", "get", "jobs", "items", "cancel"]


def start(action: str, instance_filter: dict[str, Any], *, output: Any = None, note: str = "") -> Job:
    """Record a job for the workers (the current actor is its creator); WorkflowError if refused."""
    from workflows import bulk

    return bulk.start(action, instance_filter, output=output, note=note)


def get(job_id: int) -> Job:
    from workflows import bulk

    return bulk.get(job_id)


def jobs(limit: int = 20) -> list[Job]:
    """The latest jobs, newest first."""
    from workflows import bulk

    return bulk.jobs(limit)


def items(job_id: int, status: str | None = None, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """The job's items in order, with what became of each (``status`` narrows)."""
    from workflows import bulk

    return bulk.items(job_id, status, after, limit)


def cancel(job_id: int) -> Job:
    """Stop a job between items; the rest is skipped."""
    from workflows import bulk

    return bulk.cancel(job_id)
