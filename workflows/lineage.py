"""Parent and child instances: which instance's replay runs in this context.

The replay sets ``CURRENT_INSTANCE`` before it runs ``run()``; ``create`` called from one of
its steps (the parent-child pattern) reads it to record the new instance's parent.
"""

from __future__ import annotations

import contextvars

CURRENT_INSTANCE: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "workflows_current_instance", default=None
)


def parent_columns() -> dict[str, str]:
    """``parent_workflow``/``parent_instance_id`` when called from a step of another instance."""
    current = CURRENT_INSTANCE.get()
    return {"parent_workflow": current[0], "parent_instance_id": current[1]} if current else {}
