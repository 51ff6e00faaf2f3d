"""Mail sent by this process (Django's test outbox) or by worker processes (the file backend)."""

import email
import os
from email import policy

from django.conf import settings
from django.core import mail


def sent_messages() -> list[tuple[str, str]]:
    """(to, subject) of every message sent so far."""
    return [(to, subject) for to, subject, _ in sent_mail()]


def sent_mail() -> list[tuple[str, str, str]]:
    """(to, subject, plain-text body) of every message sent so far, in this process or by workers."""
    sent = [(", ".join(m.to), m.subject, m.body) for m in getattr(mail, "outbox", [])]
    directory = settings.EMAIL_FILE_PATH if hasattr(settings, "EMAIL_FILE_PATH") else None
    for path in _files_in_write_order(directory):
        with open(path, "rb") as fh:
            # The file backend separates messages with a line of dashes.
            for chunk in fh.read().split(b"\n" + b"-" * 79 + b"\n"):
                if chunk.strip():
                    message = email.message_from_bytes(chunk.strip(), policy=policy.default)
                    text = message.get_body(preferencelist=("plain",))
                    body = text.get_content() if text is not None else ""
                    sent.append((message["To"], message["Subject"], body))
    return sent


def _files_in_write_order(directory) -> list[str]:
    """The file backend's files, oldest first. Their names carry the time to the second only
    (plus a random part), so two messages sent within one second sort by modification time."""
    if not directory or not os.path.isdir(directory):
        return []
    paths = [os.path.join(directory, name) for name in os.listdir(directory)]
    return sorted(paths, key=lambda path: (os.stat(path).st_mtime_ns, path))


def sent_to(address: str) -> list[str]:
    return [subject for to, subject in sent_messages() if address in to]
