"""Personal decision links: signed, expiring at the request's deadline, usable once.

Every notice carries the addressee's own link to the request. The token is the link row's
id signed with the project's ``SECRET_KEY`` (a forged or altered token is refused); the
row records whom it was sent to and when it was used. Opening a link (GET) only shows the
request; link-preview bots and mail scanners open links, so only a POST from that page
decides, and using it marks the link spent in the same transaction as the decision.
The addressee must be logged in as themselves unless the project sets
``WORKFLOWS["APPROVAL_LINKS_TOKEN_ONLY"]`` (then the link alone identifies them); a link
opened by another logged-in user is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction

from workflows import clock, conf
from workflows.approvals import DecisionRefused
from workflows.models import ApprovalLink, ApprovalRequest

SALT = "workflows.approval-link"


def link_url(request: ApprovalRequest, username: str, deadline: datetime, now: datetime) -> str:
    """The absolute URL of ``username``'s link to ``request`` (one link per person and request)."""
    link, _ = ApprovalLink.objects.get_or_create(
        request=request, username=username, defaults={"created_at": now, "expires_at": deadline}
    )
    base = (conf.get("BASE_URL") or "http://localhost:8000").rstrip("/")
    return base + conf.get("APPROVAL_LINK_PATH").format(token=signing.dumps(link.pk, salt=SALT))


@dataclass(frozen=True)
class OpenedLink:
    """A valid link: the request it shows, whom it was sent to, and who acts through it."""

    request: Any  # workflows.approvals Request
    addressee: str
    acting_user: Any


def open_link(token: str, user: Any) -> OpenedLink:
    """What a link shows ``user``, or DecisionRefused saying why it cannot be used (never decides)."""
    return _check(_link(token), user)


def decide_by_link(token: str, user: Any, *, approved: bool, comment: str = "", data: Any = None) -> Any:
    """Decide through a link (once): the decision and the link's use are one transaction."""
    from workflows.decisions import decide

    with transaction.atomic():
        link = ApprovalLink.objects.select_for_update().filter(pk=_link(token).pk).first()
        if link is None:
            raise DecisionRefused("this link is not valid", "link_invalid")
        opened = _check(link, user)
        decided = decide(
            link.request_id, user=opened.acting_user, approved=approved, comment=comment, data=data, channel="link"
        )
        ApprovalLink.objects.filter(pk=link.pk).update(used_at=clock.now())
    return decided


def _link(token: Any) -> ApprovalLink:
    try:
        pk = signing.loads(str(token), salt=SALT)
    except signing.BadSignature:
        raise DecisionRefused("this link is not valid (altered, or not one of ours)", "link_invalid") from None
    link = ApprovalLink.objects.filter(pk=pk).first() if isinstance(pk, int) else None
    if link is None:
        raise DecisionRefused("this link is not valid (its request is gone)", "link_invalid")
    return link


def _check(link: ApprovalLink, user: Any) -> OpenedLink:
    from workflows.decisions import get

    request = get(link.request_id)
    logged_in = getattr(user, "is_authenticated", False)
    if logged_in and user.get_username() != link.username:
        raise DecisionRefused(
            f"this link was sent to {link.username}; you are logged in as {user.get_username()}. "
            f"Log out and open it again as {link.username}, or decide from your own inbox.",
            "link_foreign",
        )
    if link.used_at is not None:
        raise DecisionRefused(f"this link has already been used (at {link.used_at:%Y-%m-%d %H:%M %Z})", "link_used")
    deadline = request.deadline or link.expires_at
    if deadline <= clock.now() or request.status == "timed_out":
        raise DecisionRefused(f"this link expired at the deadline ({deadline:%Y-%m-%d %H:%M %Z})", "link_expired")
    if not logged_in:
        if not conf.get("APPROVAL_LINKS_TOKEN_ONLY"):
            raise DecisionRefused(f"log in as {link.username} to open this link", "login_required")
        user = get_user_model().objects.filter(username=link.username, is_active=True).first()
        if user is None:
            raise DecisionRefused(f"{link.username} is no longer an active user", "link_invalid")
    return OpenedLink(request, link.username, user)
