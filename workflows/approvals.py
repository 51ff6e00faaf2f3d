"""Approvals, the public API: who may decide, how many must agree, what they fill in.

In a workflow::

    from workflows import Workflow, approvals

    decision = await step.wait_for_approval(
        "manager approval",
        approvers=["group:finance", "user:ada"],    # also "perm:<app_label>.<codename>"
        quorum=2,                                   # distinct approvals needed; one reject closes it
        requested_by=p["userId"],                   # that user may never decide it
        form=ExpenseDecisionForm,                   # a django.forms.Form subclass (optional)
        title="Expense from {userId}: {summary}",   # formatted with the params
        details={"Amount": p["amount"], "Receipt": approvals.Image(p["receiptKey"])},
        timeout="48h",
    )

Everywhere else (the dashboard, the HTTP API, the CLI, your code): ``pending``, ``get``,
``decide``, ``decided``. ``user`` is always a Django user object. Decisions are recorded
once; the one that closes a request delivers it to the waiting step exactly once.
Importing this module loads no models, so a workflows.py may import it at the top.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows.errors import WorkflowError
from workflows.values import register_type

if TYPE_CHECKING:
    from workflows.approval_links import OpenedLink
    from workflows.approval_stats import ApprovalStats
    from workflows.decisions import Request
    from workflows.models import Delegation

__all__ = [
    "Image", "DecisionRefused", "pending", "pending_page", "count_pending", "get", "decide", "decided",
    "image_thumbnail", "open_link", "decide_by_link", "set_away", "absences", "standing_in_for", "cancel_away", "stats",
]  # fmt: skip


class Image:
    """An image in the ``BUCKET`` binding, shown to approvers as a thumbnail (never a raw URL)."""

    __slots__ = ("bucket_key",)

    def __init__(self, bucket_key: str):
        if not isinstance(bucket_key, str) or not bucket_key or len(bucket_key) > 1024:
            raise ValueError(f"approvals.Image needs a bucket key of 1 to 1024 characters, got {bucket_key!r:.80}")
        self.bucket_key = bucket_key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.bucket_key == self.bucket_key

    def __hash__(self) -> int:
        return hash(("approvals.Image", self.bucket_key))

    def __repr__(self) -> str:
        return f"approvals.Image({self.bucket_key!r})"


# Stored (in a request's details) as its bucket key; comes back as an Image.
register_type(Image, "approval-image", lambda image: image.bucket_key, Image)


class DecisionRefused(WorkflowError):
    """A decision was not recorded. ``reason`` is one of:

    ``not_found``, ``not_approver``, ``own_request``, ``already_decided``, ``closed``,
    ``timed_out``, ``not_waiting``, ``invalid_data`` (then ``errors`` maps each form field
    to its messages, as Django's ``form.errors.get_json_data()`` gives them); for decision
    links also ``link_invalid``, ``link_used``, ``link_expired``, ``link_foreign`` (another
    user is logged in) and ``login_required``.
    """

    def __init__(self, message: str, reason: str, errors: dict[str, list[dict[str, str]]] | None = None):
        super().__init__(message)
        self.reason = reason
        self.errors = errors or {}


def pending(user: Any = None, workflow: str | None = None, limit: int | None = None) -> list[Request]:
    """Open requests, soonest deadline first. With ``user``: only those they may decide and
    have not decided yet (never their own). ``workflow`` narrows to one workflow."""
    from workflows import decisions

    return decisions.pending(user=user, workflow=workflow, limit=limit)


def pending_page(
    user: Any = None, workflow: str | None = None, limit: int = 50, count_up_to: int | None = None
) -> tuple[list[Request], int]:
    """The first ``limit`` requests ``pending`` lists, and how many it lists in all (never
    fewer than the page holds). With ``count_up_to=N`` counting stops past N: a total above
    N means "at least that many". The count's work then stays bounded however many requests
    are open, except for a user standing in for an away colleague: each request of theirs
    is checked one by one."""
    from workflows import decisions

    return decisions.pending_page(user=user, workflow=workflow, limit=limit, count_up_to=count_up_to)


def count_pending(user: Any, up_to: int | None = None) -> int:
    """How many open requests ``user`` may decide and has not decided (the inbox badge).
    With ``up_to=N`` counting stops past N: N + 1 means "more than N" (a stand-in for an
    away colleague still has each of their requests checked)."""
    from workflows import decisions

    return decisions.count_pending(user, up_to=up_to)


def get(request_id: int) -> Request:
    """One request, open or closed; DecisionRefused (reason ``not_found``) when there is none."""
    from workflows import decisions

    return decisions.get(request_id)


def decide(
    request_id: int,
    *,
    user: Any,
    approved: bool,
    comment: str = "",
    data: dict[str, Any] | None = None,
    channel: str = "python",
) -> Request:
    """Record ``user``'s decision; when it closes the request, deliver it to the waiting step.

    Returns the request as it is afterwards. Raises DecisionRefused, naming the reason, when
    the user may not decide it, has already, or it is no longer open; nothing is recorded then.
    ``channel`` says where the decision came from (dashboard, api, cli, python): it is kept.
    """
    from workflows import decisions

    return decisions.decide(request_id, user=user, approved=approved, comment=comment, data=data, channel=channel)


def decided(
    *,
    decider: Any = None,
    workflow: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> list[Request]:
    """Closed requests, most recently closed first: those ``decider`` (a user) took part in,
    of ``workflow``, with ``outcome`` (approved, rejected, timed_out, cancelled), closed in
    [since, until)."""
    from workflows import decisions

    return decisions.decided(decider=decider, workflow=workflow, outcome=outcome, since=since, until=until, limit=limit)


def image_thumbnail(request_id: int, bucket_key: str, size: int = 480) -> tuple[bytes, str]:
    """(bytes, content type) of a thumbnail of an image the request shows in its details.

    Only keys the request lists are served; anything that is not an image is refused.
    """
    from workflows import decisions

    return decisions.image_thumbnail(request_id, bucket_key, size)


# --------------------------------------------------------------------------- decision links


def open_link(token: str, user: Any) -> OpenedLink:
    """What a personal decision link shows ``user`` (``.request``, ``.addressee``); never decides.

    DecisionRefused (``link_invalid``, ``link_used``, ``link_expired``, ``link_foreign``,
    ``login_required``) when it cannot be used.
    """
    from workflows.approval_links import open_link as _open_link

    return _open_link(token, user)


def decide_by_link(token: str, user: Any, *, approved: bool, comment: str = "", data: Any = None) -> Request:
    """Decide through a link, once (the decision's channel is "link")."""
    from workflows.approval_links import decide_by_link as _decide_by_link

    return _decide_by_link(token, user, approved=approved, comment=comment, data=data)


# --------------------------------------------------------------------------- delegation


def set_away(user: Any, *, delegate: Any, starts: datetime, ends: datetime, note: str = "") -> Delegation:
    """``user`` is away from ``starts`` to ``ends``: ``delegate`` sees, decides and is told of
    their requests meanwhile. WorkflowError names what is wrong with the window."""
    from workflows.delegations import set_away as _set_away

    return _set_away(user, delegate=delegate, starts=starts, ends=ends, note=note)


def absences(user: Any) -> list[Delegation]:
    """``user``'s absences that have not ended (``.delegate``, ``.starts``, ``.ends``, ``.note``)."""
    from workflows.delegations import absences as _absences

    return list(_absences(user))


def standing_in_for(user: Any) -> list[Delegation]:
    """The absences, not ended, in which ``user`` is the delegate."""
    from workflows.delegations import standing_in_for as _standing_in_for

    return list(_standing_in_for(user))


def cancel_away(user: Any, absence_id: int) -> None:
    """Cancel (or end early) one of ``user``'s absences."""
    from workflows.delegations import cancel_away as _cancel_away

    _cancel_away(user, absence_id)


# --------------------------------------------------------------------------- figures


def stats(now: datetime | None = None) -> ApprovalStats:
    """How long people take: open requests by workflow and approver group, overdue ones, and
    the median and 90th percentile time to decision per workflow over 7 and 30 days."""
    from workflows.approval_stats import stats as _stats

    return _stats(now)
