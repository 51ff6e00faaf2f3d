"""Filters for the dashboard's templates: relative times, durations, JSON, status colours."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

from workflows import display_text, to_plain_json

register = template.Library()


@register.filter
def reltime(moment: object) -> str:
    """'3 min ago' / 'in 2 h', with the exact time on hover (escaped by format_html)."""
    if not isinstance(moment, datetime):
        return "–"
    seconds = (timezone.now() - moment).total_seconds()
    future = seconds < 0
    if abs(seconds) < 5 and not future:
        text = "just now"
    else:
        amount = span_text(abs(seconds))
        text = f"in {amount}" if future else f"{amount} ago"
    exact = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
    return format_html('<time datetime="{}" title="{}">{}</time>', moment.isoformat(), exact, text)


def span_text(seconds: float) -> str:
    """A span in two units at most, rounded to the smaller one: "1 d 23 h", "2 d", "1 h 5 min", "40 s"."""
    for big, big_size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if seconds >= big_size - small_size / 2:
            whole, rest = divmod(round(seconds / small_size), big_size // small_size)
            return f"{whole} {big}" + (f" {rest} {small}" if rest else "")
    if seconds >= 59.5:
        return f"{round(seconds / 60)} min"
    return f"{max(1, round(seconds))} s"


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def until(start: object, end: object) -> float | None:
    """Seconds from ``start`` to ``end`` (``{{ a|until:b|duration }}``)."""
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(0.0, (end - start).total_seconds())
    return None


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON text; the template escapes it, so a workflow's output is never HTML."""
    return json.dumps(to_plain_json(value, for_people=True), indent=2, ensure_ascii=False, sort_keys=False)


@register.filter
def detail_value(value: Any) -> str:
    """A detail or form value as text: scalars as they are, anything else as compact JSON."""
    return display_text(value)


AUDIT_ACTIONS = {
    "create": "created it", "pause": "paused it", "resume": "resumed it", "terminate": "terminated it",
    "restart": "restarted it", "retry_now": "ran its waiting retries now", "send_event": "sent an event",
}  # fmt: skip


@register.filter
def audit_action(record: dict[str, Any]) -> str:
    """What an audit record says was done, in words ("approved “sign off”")."""
    details = record.get("details") or {}
    if record.get("action") == "decide":
        return f"{'approved' if details.get('approved') else 'rejected'} “{details.get('step', 'the request')}”"
    return AUDIT_ACTIONS.get(record.get("action", ""), str(record.get("action", "")))


@register.filter
def failed_count(notices: list[dict[str, Any]]) -> int:
    """How many of a request's notifications failed for good."""
    return sum(1 for n in notices if n.get("status") == "failed")


@register.filter
def lookup(mapping: Any, key: Any) -> Any:
    """``{{ cards|lookup:step.seq }}``: an item of a dict (None when absent)."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def is_long(text: str, lines: int | str = 12) -> bool:
    return len(text) > 400 or text.count("\n") > int(lines)


@register.simple_tag
def status_badge(status: str) -> str:
    return format_html('<span class="badge s-{}">{}</span>', status, status)
