"""The django-q2 task: "advance instance N". Duplicated or late deliveries are harmless."""
from __future__ import annotations

from workflows import runtime


def advance(pk: int) -> str:
    return runtime.advance(pk)


def run_step(step_id: int) -> str:
    return runtime.run_step(step_id)
