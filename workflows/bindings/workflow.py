"""Another workflow as a binding, as in the parent-child pattern: ``self.env.CHILD_WORKFLOW.create(...)``."""

from __future__ import annotations


class WorkflowBinding:
    """Options: ``name`` of the workflow. Behaves like ``get_workflow(name)``."""

    def __init__(self, name: str):
        self.name = name

    def _handle(self):
        from workflows import get_workflow

        return get_workflow(self.name)

    def __getattr__(self, attribute):
        return getattr(self._handle(), attribute)

    def __repr__(self):
        return f"<WorkflowBinding {self.name}>"
