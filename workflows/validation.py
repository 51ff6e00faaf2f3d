"""Checks of names, ids, event types and step configs, with messages that name the limit."""

from __future__ import annotations

import re
from typing import Any

from workflows import conf
from workflows.durations import parse_duration
from workflows.errors import InvalidEventType, InvalidInstanceId, WorkflowFatalError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9\-_]*\Z")
WORKFLOW_NAME_MAX = 64
INSTANCE_ID_MAX = 100
EVENT_TYPE_MAX = 100
STEP_NAME_MAX = 256
MAX_RETRIES = 10_000
BACKOFFS = ("constant", "linear", "exponential")
_CONTROL = re.compile(r"[\x00-\x1f]")


def check_workflow_name(name: object) -> str:
    if not isinstance(name, str) or len(name) > WORKFLOW_NAME_MAX or not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid workflow name {name!r}: use 1 to {WORKFLOW_NAME_MAX} characters of "
            "letters, digits, '_' and '-', not starting with '-'"
        )
    return name


def check_instance_id(instance_id: object) -> str:
    if not isinstance(instance_id, str) or len(instance_id) > INSTANCE_ID_MAX or not NAME_PATTERN.match(instance_id):
        raise InvalidInstanceId(
            f"invalid instance id {instance_id!r}: use 1 to {INSTANCE_ID_MAX} characters of "
            "letters, digits, '_' and '-', not starting with '-'"
        )
    return instance_id


def check_event_type(event_type: object) -> str:
    if not isinstance(event_type, str) or len(event_type) > EVENT_TYPE_MAX or not NAME_PATTERN.match(event_type):
        raise InvalidEventType(
            f"invalid event type {event_type!r}: use 1 to {EVENT_TYPE_MAX} characters of "
            "letters, digits, '_' and '-', not starting with '-' (no '.')"
        )
    return event_type


def check_step_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > STEP_NAME_MAX or _CONTROL.search(name):
        raise WorkflowFatalError(
            f"Step name {name!r} is invalid: use 1 to {STEP_NAME_MAX} characters without control characters"
        )
    return name


def resolve_step_config(name: str, retries: dict[str, Any] | None, timeout: Any) -> dict:
    """The step's config: defaults merged with what the call gives, strictly validated.

    ``retries`` may give any of limit, delay, backoff; the rest come from the defaults (so
    backoff stays exponential when only limit and delay are given, as Cloudflare does).
    Returns ``{"retries": {"limit", "delay" (seconds or the callable), "backoff"},
    "timeout": seconds}``.
    """
    defaults = conf.get("STEP_RETRIES")
    merged = dict(defaults)
    if retries is not None:
        if not isinstance(retries, dict):
            raise _bad_config(name, f"retries must be a dict, not {type(retries).__name__}")
        unknown = set(retries) - {"limit", "delay", "backoff"}
        if unknown:
            raise _bad_config(name, f"unknown retries key(s) {sorted(unknown)}; allowed: limit, delay, backoff")
        merged.update(retries)
    limit = merged["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_RETRIES:
        raise _bad_config(name, f"retries.limit {limit!r} must be an integer from 0 to {MAX_RETRIES}")
    delay = merged["delay"]
    if not callable(delay):
        try:
            delay = parse_duration(delay)
        except ValueError as exc:
            raise _bad_config(name, f"retries.delay: {exc}") from None
    if merged["backoff"] not in BACKOFFS:
        raise _bad_config(name, f"retries.backoff {merged['backoff']!r} must be one of {', '.join(BACKOFFS)}")
    timeout = conf.get("STEP_TIMEOUT") if timeout is None else timeout
    try:
        timeout_seconds = parse_duration(timeout)
    except ValueError as exc:
        raise _bad_config(name, f"timeout: {exc}") from None
    if timeout_seconds <= 0:
        raise _bad_config(name, f"timeout {timeout!r} must be greater than 0")
    return {"retries": {"limit": limit, "delay": delay, "backoff": merged["backoff"]}, "timeout": timeout_seconds}


def storable_config(config: dict) -> dict:
    """The config as stored with the step: a dynamic delay becomes the marker "[dynamic]"."""
    delay = config["retries"]["delay"]
    return {
        "retries": {**config["retries"], "delay": "[dynamic]" if callable(delay) else delay},
        "timeout": config["timeout"],
    }


def retry_wait(backoff: str, base: float, failed_attempt: int) -> float:
    """Seconds to wait before the attempt after ``failed_attempt`` (1-based)."""
    if backoff == "constant":
        return base
    if backoff == "linear":
        return base * failed_attempt
    return base * 2 ** (failed_attempt - 1)


def _bad_config(name: str, problem: str) -> WorkflowFatalError:
    return WorkflowFatalError(f'Step config for "{name}" is invalid: {problem}')
