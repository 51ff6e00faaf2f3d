"""Notifiers: how approvers hear of a request. Pluggable with ``WORKFLOWS["APPROVAL_NOTIFIERS"]``.

A notifier is a class (named by its dotted path, built without arguments) with one method,
``send(notice)``: it raises to fail (the delivery is retried with backoff, then marked
failed, never failing the workflow) or ``NothingToSend`` when this person cannot be reached
this way (no email address). Two ship with the engine:

- ``EmailNotifier``: HTML and text mail through Django's configured email backend.
- ``WebhookNotifier``: a JSON POST to ``WORKFLOWS["APPROVAL_WEBHOOK_URL"]`` (a Slack or
  Teams bridge), signed with HMAC-SHA256 of ``"<timestamp>.<body>"`` using
  ``WORKFLOWS["APPROVAL_WEBHOOK_SECRET"]`` in ``X-Workflows-Signature: sha256=<hex>``
  (with ``X-Workflows-Timestamp``), so the receiver can check who sent it and when.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.core.serializers.json import DjangoJSONEncoder
from django.template.loader import render_to_string
from django.utils import timezone

from workflows import conf
from workflows.models import Notification
from workflows.values import display_text, to_plain_json


class NothingToSend(Exception):
    """This notice cannot or need not go out (recorded as skipped, not failed)."""


@dataclass(frozen=True)
class ApprovalNotice:
    """One notice to one person: what a notifier needs to write its message."""

    id: int  # the notification's id: the same on a retry, so receivers can drop a repeat
    kind: str  # opened, reminder, escalation
    slot: int  # the reminder's number
    request: Any  # workflows.approvals Request
    recipient: Any  # the user told
    on_behalf_of: str  # the away approver the recipient stands in for ("" if none)
    link: str  # the recipient's personal link (absolute URL)
    deadline: datetime | None

    @property
    def subject(self) -> str:
        lead = {"opened": "Approval needed", "reminder": "Reminder: approval needed", "escalation": "Escalated to you"}
        who = f" (for {self.on_behalf_of}, who is away)" if self.on_behalf_of else ""
        return f"{lead.get(self.kind, 'Approval needed')}: {self.request.title}{who}"[:250]

    def detail_lines(self) -> list[tuple[str, str]]:
        """(label, text) of each detail; an image as its name (the link shows it)."""
        from workflows.approvals import Image

        return [
            (str(label), f"image {value.bucket_key}" if isinstance(value, Image) else display_text(value))
            for label, value in self.request.details.items()
        ]

    def as_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "id": self.id, "type": f"approval.{self.kind}", "slot": self.slot, "subject": self.subject,
            "link": self.link,
            "recipient": {"username": self.recipient.get_username(), "email": getattr(self.recipient, "email", "")},
            "on_behalf_of": self.on_behalf_of or None,
            "request": {
                "id": r.id, "workflow": r.workflow, "instance_id": r.instance_id, "step": r.step, "title": r.title,
                "requested_by": r.requested_by, "approvers": r.approvers, "quorum": r.quorum,
                "approvals": r.approvals, "deadline": self.deadline, "created_at": r.created_at,
                "details": to_plain_json(r.details, for_people=True),
            },
        }  # fmt: skip


def notice_for(row: Notification, now: datetime) -> ApprovalNotice:
    """The notice a notification row stands for, or NothingToSend when it no longer applies."""
    from workflows.approval_links import link_url
    from workflows.decisions import get

    request = get(row.request_id)
    if not request.is_open or request.deadline is None or request.deadline <= now:
        raise NothingToSend(f"approval {request.id} closed before this notice went out ({request.status})")
    user = get_user_model().objects.filter(username=row.recipient, is_active=True).first()
    if user is None:
        raise NothingToSend(f"{row.recipient} is no longer an active user")
    for d in request.decisions:
        if row.recipient in (d.by, d.on_behalf_of) or (row.on_behalf_of and row.on_behalf_of in (d.by, d.on_behalf_of)):
            raise NothingToSend(f"{row.recipient} needs no notice: {d.by} decided already")
    link = link_url(row.request, row.recipient, request.deadline, now)
    return ApprovalNotice(row.pk, row.kind, row.slot, request, user, row.on_behalf_of, link, request.deadline)


class EmailNotifier:
    """HTML and plain-text mail through Django's email backend (``DEFAULT_FROM_EMAIL``)."""

    def send(self, notice: ApprovalNotice) -> None:
        address = getattr(notice.recipient, "email", "")
        if not address:
            raise NothingToSend(f"{notice.recipient.get_username()} has no email address")
        context = {
            "notice": notice, "r": notice.request, "details": notice.detail_lines(),
            "deadline": timezone.localtime(notice.deadline) if notice.deadline else None,
        }  # fmt: skip
        text = render_to_string("workflows/email/approval.txt", context)
        html = render_to_string("workflows/email/approval.html", context)
        mail = EmailMultiAlternatives(notice.subject, text, settings.DEFAULT_FROM_EMAIL, [address])
        mail.attach_alternative(html, "text/html")
        mail.send()


class WebhookNotifier:
    """A signed JSON POST per notice to ``WORKFLOWS["APPROVAL_WEBHOOK_URL"]``; any non-2xx answer fails."""

    def send(self, notice: ApprovalNotice) -> None:
        url = conf.get("APPROVAL_WEBHOOK_URL")
        secret = conf.get("APPROVAL_WEBHOOK_SECRET")
        if not url or not secret:
            raise RuntimeError('WebhookNotifier needs WORKFLOWS["APPROVAL_WEBHOOK_URL"] and "APPROVAL_WEBHOOK_SECRET"')
        body = json.dumps(notice.as_json(), cls=DjangoJSONEncoder, ensure_ascii=False).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json", "User-Agent": "django-workflows",
            "X-Workflows-Timestamp": stamp, "X-Workflows-Signature": "sha256=" + sign(secret, stamp, body),
        }  # fmt: skip
        call = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(call, timeout=conf.get("NOTIFY_TIMEOUT_SECONDS")) as answer:
                answer.read(1024)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the webhook answered {exc.code} {exc.reason}") from None


def sign(secret: str, stamp: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) of ``"<timestamp>.<body>"``: what a receiver recomputes to verify a webhook."""
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
