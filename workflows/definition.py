"""``Workflow``, the class users subclass, and the registry of workflows by name."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from workflows.validation import check_workflow_name

if TYPE_CHECKING:
    from workflows.bindings import Env
    from workflows.engine.context import WorkflowEvent

_REGISTRY: dict[str, type[Workflow]] = {}


class Workflow:
    """Subclass, set ``name``, and define ``run(self, event, step)`` (``def`` or ``async def``).

    ``run`` is replayed from the top whenever the instance resumes; finished steps return
    their stored results instead of running again. Subclasses are registered when their
    module is imported; each installed app's ``workflows.py`` is imported at startup.
    """

    name: str = ""
    # How long finished instances are kept (a duration); None means WORKFLOWS["RETENTION_DAYS"].
    retention = None
    # Cron expressions (e.g. ["0 9 * * *"]); each slot creates one instance "<prefix>-<slot ms>"
    # with event.schedule set. The prefix is schedule_id_prefix, or the workflow's name.
    schedules: list[str] = []
    schedule_id_prefix: str | None = None
    # Params to find instances by (business keys such as "customer", "order_id"): their
    # values are indexed when an instance is created; ``step.set_attributes`` adds more.
    search_attributes: tuple[str, ...] = ()
    # The configured bindings (``self.env.DB`` ...), set on each instance before ``run`` is called.
    env: Env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            return  # an abstract base that shares code between workflows
        check_workflow_name(cls.name)
        if not callable(getattr(cls, "run", None)) or cls.run is Workflow.run:
            raise ImproperlyConfigured(f"workflow {cls.name!r} ({cls.__qualname__}) must define run(self, event, step)")
        existing = _REGISTRY.get(cls.name)
        if existing is not None and _qualified(existing) != _qualified(cls):
            raise ImproperlyConfigured(
                f"two workflows are named {cls.name!r}: {_qualified(existing)} and {_qualified(cls)}"
            )
        _REGISTRY[cls.name] = cls

    # ``step`` is a WorkflowStep for ``async def run``, a SyncWorkflowStep for ``def run``.
    def run(self, event: WorkflowEvent, step: Any) -> Any:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    @classmethod
    def is_async(cls) -> bool:
        return inspect.iscoroutinefunction(cls.run)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def lookup(name: str) -> type[Workflow] | None:
    return _REGISTRY.get(name)


def registered() -> dict[str, type[Workflow]]:
    return dict(_REGISTRY)
