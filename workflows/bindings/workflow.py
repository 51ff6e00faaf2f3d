"""Another workflow as a binding, as in the parent-child pattern: ``self.env.CHILD_WORKFLOW.create(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.api import WorkflowHandle


class WorkflowBinding:
    """Options: ``name`` of the workflow. Behaves like ``get_workflow(name)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _handle(self) -> WorkflowHandle:
        from workflows import get_workflow

        return get_workflow(self.name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._handle(), attribute)

    def __repr__(self) -> str:
        return f"<WorkflowBinding {self.name}>"
