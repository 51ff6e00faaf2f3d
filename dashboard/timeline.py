"""Turn an instance's description into what the timeline draws: lanes, segments, a time axis.

Each step is a lane. A ``step.do`` lane has a segment per attempt (succeeded, failed,
running) with the retry delays between them; a sleep and a wait are one span each. The
axis runs from the first step's start to the end (or to now while the instance lives),
with ticks at round intervals labelled by the time since the start, so a retry shows as
its own segments and a long sleep reads as "+6 d" rather than an unlabelled bar.
Positions are percentages of the axis, drawn by SVG attributes (no inline styles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from workflows import OPEN_STEP, StepStatus

# Round tick intervals, in seconds: the first one giving at most MAX_TICKS ticks is used.
TICK_STEPS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000,
)  # fmt: skip
MAX_TICKS = 6
MIN_WIDTH = 0.4  # percent: even a 1 ms step is visible


@dataclass
class Segment:
    left: float
    width: float
    kind: str  # ok, failed, running, delay, sleep, wait, queued, cancelled
    title: str


@dataclass
class Lane:
    step: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)
    duration: float | None = None


@dataclass
class Tick:
    left: float
    label: str
    anchor: str  # SVG text-anchor: start, middle or end


@dataclass
class Timeline:
    start: datetime | None
    end: datetime | None
    span: float
    ticks: list[Tick]
    lanes: list[Lane]
    audit: list
    duration: float | None


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def build(story: dict[str, Any], audit: list, now: datetime | None = None) -> Timeline:
    """The timeline of the instance's current run (earlier runs are listed under their steps)."""
    now = now or timezone.now()
    steps = story["steps"]
    start = min((s["started_at"] for s in steps), default=story["created_at"])
    end = story["ended_at"] or now
    ends = [s["ended_at"] for s in steps if s["ended_at"]]
    if ends and max(ends) > end:
        end = max(ends)
    span = max(seconds_between(start, end) or 0.0, 0.001)
    axis = _Axis(start, span)
    lanes = [Lane(step=s, segments=_segments(s, axis, now), duration=_step_duration(s, now)) for s in steps]
    return Timeline(
        start=start,
        end=end,
        span=span,
        ticks=axis.ticks(),
        lanes=lanes,
        audit=audit,
        duration=seconds_between(story["created_at"], story["ended_at"]),
    )


def _step_duration(step: dict[str, Any], now: datetime) -> float | None:
    if step["ended_at"] is None and step["status"] in OPEN_STEP:
        return seconds_between(step["started_at"], now)
    return seconds_between(step["started_at"], step["ended_at"])


class _Axis:
    def __init__(self, start: datetime, span: float):
        self.start = start
        self.span = span

    def pct(self, moment: datetime) -> float:
        return min(100.0, max(0.0, 100 * (seconds_between(self.start, moment) or 0.0) / self.span))

    def segment(self, begin: datetime, finish: datetime, kind: str, title: str) -> Segment:
        left = min(self.pct(begin), 100 - MIN_WIDTH)
        width = max(MIN_WIDTH, min(self.pct(finish) - left, 100 - left))
        return Segment(round(left, 3), round(width, 3), kind, title)

    def ticks(self) -> list[Tick]:
        return round_ticks(self.span, first="start", prefix="+")


def round_ticks(span: float, *, first: str, prefix: str = "") -> list[Tick]:
    """Ticks at a round interval across ``span`` seconds (at most MAX_TICKS + 1), as percentages."""
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1])
    ticks = []
    n = 0
    while n * step <= span + 1e-9:
        left = 100 * n * step / span
        anchor = "start" if n == 0 else ("end" if left > 92 else "middle")
        ticks.append(Tick(round(left, 3), first if n == 0 else f"{prefix}{short_duration(n * step)}", anchor))
        n += 1
    return ticks


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _segments(step: dict[str, Any], axis: _Axis, now: datetime) -> list[Segment]:
    if step["kind"] == "do":
        return _attempt_segments(step, axis, now)
    finish = step["ended_at"] or now
    kind = {"sleep": "sleep", "wait_for_event": "wait"}.get(step["kind"], "wait")
    if step["status"] == StepStatus.CANCELLED:
        kind = "cancelled"
    title = f"{step['name']}: {step['status']}, {_when(step['started_at'])} → {_when(finish)}"
    return [axis.segment(step["started_at"], finish, kind, title)]


def _attempt_segments(step: dict[str, Any], axis: _Axis, now: datetime) -> list[Segment]:
    segments: list[Segment] = []
    previous_end: datetime | None = None
    for attempt in step.get("attempts", []):
        begin = attempt["started_at"] or step["started_at"]
        if previous_end is not None and begin > previous_end:
            waited = short_duration((begin - previous_end).total_seconds())
            segments.append(axis.segment(previous_end, begin, "delay", f"retry delay, {waited}"))
        finish = attempt["ended_at"] or now
        if attempt["success"]:
            kind, outcome = "ok", "succeeded"
        elif attempt["success"] is None:
            kind, outcome = "running", "running"
        else:
            kind, outcome = "failed", (attempt["error"] or {}).get("name", "failed")
        title = f"attempt {attempt['number']}: {outcome}, {_when(begin)} → {_when(finish)}"
        segments.append(axis.segment(begin, finish, kind, title))
        previous_end = attempt["ended_at"]
    if step["status"] == StepStatus.RETRYING and previous_end is not None:
        segments.append(axis.segment(previous_end, now, "delay", f"waiting to retry until {_when(step['wake_at'])}"))
    if step["status"] == StepStatus.QUEUED and not segments:
        segments.append(axis.segment(step["started_at"], now, "queued", "handed to another worker, not started yet"))
    if not segments:  # cancelled before its first attempt
        segments.append(axis.segment(step["started_at"], step["ended_at"] or now, "cancelled", step["status"]))
    return segments


def short_duration(seconds: float) -> str:
    """A duration in its largest whole unit: 250 ms, 1.5 s, 12 min, 6 h, 2 d (rounded, not cut)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return (f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else f"{round(value)}") + f" {unit}"
    return f"{round(seconds)} s"
