"""The Approvals page's chart: time to decision per workflow, median and 90th percentile.

One row per workflow and window (7 and 30 days): a light bar to the 90th percentile with
a solid bar to the median over it, on one linear axis with round ticks ("1 h", "2 h").
Positions are percentages drawn by SVG attributes, like the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dashboard.timeline import Tick, round_ticks, short_duration

if TYPE_CHECKING:
    from workflows.approvals import ApprovalStats

ROW_HEIGHT = 22
GROUP_GAP = 10


@dataclass(frozen=True)
class Row:
    workflow: str
    days: int
    decided: int
    median: float
    p90: float
    median_width: float  # percent of the axis
    p90_width: float
    y: int

    @property
    def title(self) -> str:
        return (
            f"{self.workflow}, last {self.days} days: median {short_duration(self.median)}, "
            f"90th percentile {short_duration(self.p90)} ({self.decided} decided)"
        )


@dataclass(frozen=True)
class Chart:
    rows: list[Row]
    ticks: list[Tick]
    height: int


def build(figures: ApprovalStats) -> Chart | None:
    """The chart, or None when nothing was decided in the last 30 days."""
    timed = [
        (wf.workflow, timing)
        for wf in figures.workflows
        for timing in sorted(wf.timings.values(), key=lambda t: t.days)
        if timing.decided and timing.median is not None and timing.p90 is not None
    ]
    if not timed:
        return None
    span = max(max(t.p90 or 0.0 for _, t in timed), 1.0)
    rows, y, previous = [], 0, None
    for workflow, t in timed:
        if previous is not None and workflow != previous:
            y += GROUP_GAP
        assert t.median is not None and t.p90 is not None
        rows.append(Row(workflow, t.days, t.decided, t.median, t.p90, _pct(t.median, span), _pct(t.p90, span), y))
        y += ROW_HEIGHT
        previous = workflow
    return Chart(rows, round_ticks(span, first="0"), y)


def _pct(seconds: float, span: float) -> float:
    return round(max(0.4, 100 * seconds / span), 3)
