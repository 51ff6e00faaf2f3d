"""How many approval requests wait, as the badge and the inbox say it.

Counting stops past ``COUNTED_UP_TO`` (the most cards the inbox lists): with 10,000 open
requests an exact count would visit every one of them on every dashboard page, and "more
than 1,000" tells an approver as much as the exact figure does.
"""

from __future__ import annotations

from typing import Any

from workflows import approvals

COUNTED_UP_TO = 1000


def pending_count(user: Any) -> int:
    """The badge's figure: exact up to ``COUNTED_UP_TO``, ``COUNTED_UP_TO + 1`` beyond it."""
    return approvals.count_pending(user, up_to=COUNTED_UP_TO)


def badge_text(count: int) -> str:
    return f"{COUNTED_UP_TO}+" if count > COUNTED_UP_TO else str(count)


def total_text(count: int) -> str:
    return f"more than {COUNTED_UP_TO:,}" if count > COUNTED_UP_TO else f"{count:,}"
