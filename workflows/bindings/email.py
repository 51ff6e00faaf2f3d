"""``EMAIL``: send mail through Django's email framework (console backend in the demo, SMTP by settings)."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail


class DjangoEmail:
    """Options: ``from_email`` (default settings.DEFAULT_FROM_EMAIL)."""

    def __init__(self, from_email: str | None = None) -> None:
        self.from_email = from_email

    def send(self, to: str | Iterable[str], subject: str, body: str = "") -> dict:
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ValueError(f"invalid recipient(s) {to!r}")
        sent = send_mail(subject, body or subject, self.from_email or settings.DEFAULT_FROM_EMAIL, recipients)
        return {"to": recipients, "subject": subject, "sent": sent}
