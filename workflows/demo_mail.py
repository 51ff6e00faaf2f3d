"""The demo's mail on its console: each message the worker sends, as one short note.

The demo's worker writes mail with Django's file backend into ``var/mail``; this watcher,
in the demo's own process, prints who each message went to, its subject and the decision
link it carries, so a newcomer sees the notifications arrive where they typed the command.
"""

from __future__ import annotations

import email
import os
import re
import threading
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

SEPARATOR = b"\n" + b"-" * 79 + b"\n"  # how the file backend separates messages
LINK = re.compile(r"https?://\S+/approvals/link/\S+")


def summary(raw: bytes) -> str:
    """ "✉ to ada@example.com: <subject>" and the message's decision link, if any."""
    message = email.message_from_bytes(raw.strip(), policy=policy.default)
    text = message.get_body(preferencelist=("plain",))
    body = text.get_content() if text is not None else ""
    link = LINK.search(body)
    note = f"  ✉ mail to {message['To']}: {message['Subject']}\n"
    return note + (f"      {link.group(0)}\n" if link else "")


def watch(directory: Path, out: SupportsWrite[str], stop: threading.Event, every: float = 0.5) -> None:
    """Print each message written into ``directory`` from now on, until ``stop`` is set."""
    read: dict[str, int] = {}
    if directory.is_dir():
        read = {entry.path: entry.stat().st_size for entry in os.scandir(directory)}  # older mail stays quiet
    while not stop.wait(every):
        if not directory.is_dir():
            continue
        for entry in sorted(os.scandir(directory), key=lambda e: e.stat().st_mtime_ns):
            done = read.get(entry.path, 0)
            if entry.stat().st_size <= done:
                continue
            with open(entry.path, "rb") as fh:
                fh.seek(done)
                fresh = fh.read()
            # Only whole messages: the backend ends each with the separator line.
            complete = fresh[: fresh.rfind(SEPARATOR) + len(SEPARATOR)] if SEPARATOR in fresh else b""
            read[entry.path] = done + len(complete)
            for chunk in complete.split(SEPARATOR):
                if chunk.strip():
                    out.write(summary(chunk))


def start(directory: Path, out: SupportsWrite[str]) -> threading.Event:
    """Watch in a daemon thread; set the returned event to stop."""
    stop = threading.Event()
    threading.Thread(target=watch, args=(directory, out, stop), name="demo-mail", daemon=True).start()
    return stop
