"""Filters for the dashboard's templates: relative times, durations, JSON, status colours."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

from workflows import to_plain_json

register = template.Library()


@register.filter
def reltime(moment: object) -> str:
    """'3 min ago' / 'in 2 h', with the exact time on hover (escaped by format_html)."""
    if not isinstance(moment, datetime):
        return "–"
    seconds = (timezone.now() - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        amount = "just now" if seconds < 5 and not future else f"{max(1, int(seconds))} s"
    text = amount if amount == "just now" else (f"in {amount}" if future else f"{amount} ago")
    exact = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
    return format_html('<time datetime="{}" title="{}">{}</time>', moment.isoformat(), exact, text)


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
def pretty_json(value: Any) -> str:
    """Indented JSON text; the template escapes it, so a workflow's output is never HTML."""
    return json.dumps(to_plain_json(value), indent=2, ensure_ascii=False, sort_keys=False)


@register.filter
def is_long(text: str, lines: int | str = 12) -> bool:
    return len(text) > 400 or text.count("\n") > int(lines)


@register.simple_tag
def status_badge(status: str) -> str:
    return format_html('<span class="badge s-{}">{}</span>', status, status)
