"""Exceptions of the public API and of the engine.

Errors keep their Python identity (project decision 4): an instance's error is reported as
``{"name": type(exc).__name__, "message": str(exc)}``, so these classes are named for what
went wrong rather than folded into a generic "Error".
"""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every error the engine's API raises on bad input or wrong state."""


class WorkflowNotFound(WorkflowError):
    """No installed app defines a workflow of that name."""


class InstanceNotFound(WorkflowError):
    """No instance with that id exists for the workflow."""


class InvalidInstanceId(WorkflowError, ValueError):
    """An instance id outside ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$ or over 100 characters."""


class DuplicateInstanceId(WorkflowError):
    """An instance with that id already exists (ids are unique while the instance is kept)."""


class InvalidEventType(WorkflowError, ValueError):
    """An event type outside ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$ or over 100 characters."""


class ValueTooLarge(WorkflowError, ValueError):
    """A value whose stored form exceeds the size limit (1 MiB by default)."""


class NotSerialisable(WorkflowError, TypeError):
    """A value that cannot cross a step boundary (not JSON, bytes, datetime, date, Decimal, UUID)."""


class InvalidState(WorkflowError):
    """The operation is not allowed in the instance's current status."""


class WorkflowFatalError(WorkflowError):
    """A misuse of the step API inside run(): it errors the instance unless caught."""


class WorkflowTimeoutError(WorkflowError):
    """A step attempt ran past its timeout, or a wait_for_event reached its deadline."""


class WorkflowInternalError(WorkflowError):
    """An attempt that failed for an engine reason (a worker died mid-step, output too large)."""


class NonRetryableError(Exception):
    """Raised inside a step callback: the step fails at once, without further attempts.

    ``name`` optionally overrides the class name reported in the instance's error.
    """

    def __init__(self, message: str = "", name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if name:
            self.error_name = name


class NonRetryableDelayError(NonRetryableError):
    """A dynamic retry delay function raised or returned something that is not a duration."""


class NonDeterminismError(WorkflowFatalError):
    """The code and an instance's recorded history disagree (``WORKFLOWS["ON_DIVERGENCE"] = "error"``):
    a recorded step is never asked for, or a new step was inserted before recorded ones."""
