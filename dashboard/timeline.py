"""Turn an instance's description into what the timeline draws: bars, durations, labels."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from workflows import OPEN_STEP


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def build(story: dict, audit: list, now: datetime | None = None) -> dict:
    """Each step with ``bar_left``/``bar_width`` (percent of the instance's life so far),
    its duration, and the audit entries, merged into one list in time order."""
    now = now or timezone.now()
    start = story["created_at"]
    end = story["ended_at"] or now
    span = max(_seconds(start, end) or 0.0, 0.001)
    steps = []
    for step in story["steps"]:
        step_end = step["ended_at"] or (now if step["status"] in OPEN_STEP else step["started_at"])
        left = 100 * (_seconds(start, step["started_at"]) or 0.0) / span
        width = 100 * (_seconds(step["started_at"], step_end) or 0.0) / span
        steps.append(
            {
                **step,
                "duration": _seconds(step["started_at"], step["ended_at"]),
                "bar_left": round(min(left, 99.5), 2),
                "bar_width": round(max(0.5, min(width, 100 - min(left, 99.5))), 2),
                "open": step["ended_at"] is None,
                "approval": (step.get("event") or {}).get("payload") if step["kind"] == "wait_for_event" else None,
            }
        )
    return {"steps": steps, "span": span, "audit": audit, "duration": _seconds(start, story["ended_at"])}
