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
from datetime import datetime, timedelta
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
    step: dict[str, Any]  # the (first) step drawn on this lane; its anchor in the list below
    segments: list[Segment] = field(default_factory=list)
    duration: float | None = None
    occurrences: int = 1  # more than 1: every call of a step of this name, on one lane


@dataclass
class Tick:
    left: float
    label: str
    anchor: str  # SVG text-anchor: start, middle or end


@dataclass
class Marker:
    """A child instance, drawn where it was started."""

    left: float
    workflow: str
    id: str
    status: str


@dataclass
class Timeline:
    start: datetime | None
    end: datetime | None
    span: float
    ticks: list[Tick]
    lanes: list[Lane]
    audit: list
    duration: float | None
    zoom: tuple[float, float] | None = None  # seconds from the start, when zoomed in
    zoom_steps: list[tuple[str, str]] = field(default_factory=list)  # (label, "a,b") to zoom into
    zoom_out: str = ""  # "a,b" of the range twice as wide ("" when not zoomed)
    markers: list[Marker] = field(default_factory=list)
    hidden_lanes: int = 0  # steps not drawn (past MAX_LANES)
    steps: list[dict[str, Any]] = field(default_factory=list)  # this page of the step list
    steps_from: int = 0
    steps_total: int = 0

    @property
    def steps_to(self) -> int:
        """One past the last step of this page (for "101–200 of 10,000")."""
        return self.steps_from + len(self.steps)

    @property
    def steps_earlier(self) -> int:
        return max(0, self.steps_from - STEP_PAGE)


MAX_LANES = 60  # beyond this many steps the chart draws one lane per step name
STEP_PAGE = 100  # the step list shows this many at a time


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def build(
    story: dict[str, Any],
    audit: list,
    now: datetime | None = None,
    *,
    zoom: tuple[float, float] | None = None,
    steps_from: int = 0,
) -> Timeline:
    """The timeline of the instance's current run (earlier runs are listed under their steps).

    ``zoom`` (seconds from the first step's start) draws only that range; ``steps_from`` is
    where this page of the step list begins.
    """
    now = now or timezone.now()
    steps = story["steps"]
    start = min((s["started_at"] for s in steps), default=story["created_at"])
    end = story["ended_at"] or now
    ends = [s["ended_at"] for s in steps if s["ended_at"]]
    if ends and max(ends) > end:
        end = max(ends)
    full = max(seconds_between(start, end) or 0.0, 0.001)
    view = _clamp(zoom, full)
    axis = _Axis(start + timedelta(seconds=view[0]), max(view[1] - view[0], 0.001), offset=view[0])
    lanes, hidden = _lanes(steps, axis, now)
    steps_from = max(0, min(steps_from, max(len(steps) - 1, 0)))
    return Timeline(
        start=start, end=end, span=full, ticks=axis.ticks(), lanes=lanes, audit=audit,
        duration=seconds_between(story["created_at"], story["ended_at"]),
        zoom=view if view != (0.0, full) else None, zoom_steps=_zoom_steps(view), zoom_out=_zoom_out(view, full),
        markers=_markers(story, axis), hidden_lanes=hidden, steps=steps[steps_from : steps_from + STEP_PAGE],
        steps_from=steps_from, steps_total=len(steps),
    )  # fmt: skip


def _clamp(zoom: tuple[float, float] | None, full: float) -> tuple[float, float]:
    if zoom is None:
        return (0.0, full)
    a, b = max(0.0, min(zoom)), min(full, max(zoom))
    return (a, b) if b - a >= 0.001 else (0.0, full)


def _zoom_steps(view: tuple[float, float]) -> list[tuple[str, str]]:
    """Four quarters of the visible range, each a link that zooms into it."""
    a, b = view
    width = (b - a) / 4
    return [
        (
            f"{short_duration(a + i * width)}–{short_duration(a + (i + 1) * width)}",
            f"{a + i * width:.3f},{a + (i + 1) * width:.3f}",
        )
        for i in range(4)
    ]


def _zoom_out(view: tuple[float, float], full: float) -> str:
    a, b = view
    if (a, b) == (0.0, full):
        return ""
    middle, width = (a + b) / 2, (b - a)
    return f"{max(0.0, middle - width):.3f},{min(full, middle + width):.3f}"


def _lanes(steps: list[dict[str, Any]], axis: _Axis, now: datetime) -> tuple[list[Lane], int]:
    """A lane per step; past MAX_LANES steps, a lane per step name (its calls side by side)."""
    if len(steps) <= MAX_LANES:
        return [Lane(step=s, segments=_segments(s, axis, now), duration=_step_duration(s, now)) for s in steps], 0
    by_name: dict[tuple[str, str], Lane] = {}
    for s in steps:
        lane = by_name.get((s["kind"], s["name"]))
        if lane is None:
            if len(by_name) >= MAX_LANES:
                continue
            lane = by_name[(s["kind"], s["name"])] = Lane(step=s, duration=0.0, occurrences=0)
        lane.occurrences += 1
        lane.segments += [seg for seg in _segments(s, axis, now) if seg.width > 0]
        lane.duration = (lane.duration or 0.0) + (_step_duration(s, now) or 0.0)
    drawn = sum(lane.occurrences for lane in by_name.values())
    for lane in by_name.values():
        lane.segments = _merge(lane.segments)
    return list(by_name.values()), len(steps) - drawn


def _merge(segments: list[Segment]) -> list[Segment]:
    """Thousands of segments of one kind that overlap on screen are drawn as one."""
    merged: list[Segment] = []
    for seg in sorted(segments, key=lambda s: s.left):
        last = merged[-1] if merged else None
        if last is not None and last.kind == seg.kind and seg.left <= last.left + last.width + 0.2:
            last.width = round(max(last.left + last.width, seg.left + seg.width) - last.left, 3)
            continue
        merged.append(Segment(seg.left, seg.width, seg.kind, seg.title))
    return merged


def _markers(story: dict[str, Any], axis: _Axis) -> list[Marker]:
    return [
        Marker(round(axis.pct(c["created_at"]), 3), c["workflow"], c["id"], c["status"])
        for c in story.get("children", [])
        if c.get("created_at") is not None and 0 <= axis.pct(c["created_at"]) <= 100
    ]


def _step_duration(step: dict[str, Any], now: datetime) -> float | None:
    if step["ended_at"] is None and step["status"] in OPEN_STEP:
        return seconds_between(step["started_at"], now)
    return seconds_between(step["started_at"], step["ended_at"])


class _Axis:
    def __init__(self, start: datetime, span: float, offset: float = 0.0):
        self.start = start
        self.span = span
        self.offset = offset  # seconds from the instance's first step to this axis' start

    def pct(self, moment: datetime) -> float:
        seconds = (moment - self.start).total_seconds()
        return min(100.0, max(0.0, 100 * seconds / self.span))

    def segment(self, begin: datetime, finish: datetime, kind: str, title: str) -> Segment:
        if (finish - self.start).total_seconds() < 0 or (begin - self.start).total_seconds() > self.span:
            return Segment(0.0, 0.0, kind, title)  # outside the zoomed range: not drawn
        left = min(self.pct(begin), 100 - MIN_WIDTH)
        width = max(MIN_WIDTH, min(self.pct(finish) - left, 100 - left))
        return Segment(round(left, 3), round(width, 3), kind, title)

    def ticks(self) -> list[Tick]:
        return round_ticks(self.span, first="start" if not self.offset else f"+{short_duration(self.offset)}",
                           prefix="+", offset=self.offset)  # fmt: skip


def round_ticks(span: float, *, first: str, prefix: str = "", offset: float = 0.0) -> list[Tick]:
    """Ticks at a round interval across ``span`` seconds (at most MAX_TICKS + 1), as percentages;
    labels count from ``offset`` (a zoomed axis keeps the instance's own clock)."""
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1])
    ticks = []
    n = 0
    while n * step <= span + 1e-9:
        left = 100 * n * step / span
        anchor = "start" if n == 0 else ("end" if left > 92 else "middle")
        ticks.append(Tick(round(left, 3), first if n == 0 else f"{prefix}{short_duration(offset + n * step)}", anchor))
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
