"""`manage.py workflows demo`: a login to print, an instance to look at, a worker and the web server."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model

from workflows import demo_mail
from workflows.definition import registered

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

LOGIN_FILE = Path(settings.BASE_DIR) / "var" / "demo-login.txt"


def demo_password() -> str:
    """The demo's password: generated once per checkout, kept in var/ (never a published default)."""
    if LOGIN_FILE.exists():
        return LOGIN_FILE.read_text().strip()
    password = secrets.token_urlsafe(9)
    LOGIN_FILE.parent.mkdir(exist_ok=True)
    LOGIN_FILE.write_text(password + "\n")
    return password


def setup_demo(out: SupportsWrite[str], port: int = 8000) -> None:
    """The admin login, the example app's people and instances, and a banner that says what is there."""
    password = demo_password()
    User = get_user_model()
    admin = User.objects.filter(username="admin").first() or User(username="admin", email="admin@example.com")
    admin.is_staff = admin.is_superuser = True
    admin.set_password(password)
    admin.save()
    people: list[tuple[str, str]] = [("admin", "superuser: may do anything, and sees the Admin")]
    starter = getattr(settings, "WORKFLOWS_DEMO_STARTER", None)
    if starter:
        from django.utils.module_loading import import_string

        people += import_string(starter)(f"http://127.0.0.1:{port}", password)
    logins = "\n".join(f"    {name:<7} {role}" for name, role in people)
    out.write(
        "\n"
        f"  Open:       http://127.0.0.1:{port}/   (PORT=8080 ./scripts/demo picks another port)\n"
        f"  Password:   {password}   (every login below; kept in var/demo-login.txt)\n"
        f"  Logins:\n{logins}\n"
        f"  Workflows:  {', '.join(sorted(registered()))}\n\n"
        "  Example instances are starting: some finish, one sleeps for its 7-day trial, one fails\n"
        "  until you switch its export service on, and approval requests wait in the Inbox.\n"
        "  Log in as ada, then as bob, to see two people's inboxes; a large expense needs both.\n"
        "  Approvers are mailed a personal decision link (printed below as the worker sends it);\n"
        "  the team dinner expense reminds them every 2 min, adds a director at 3 and rejects\n"
        "  itself at 6. ada is away: erin decides for her. Figures: the Approvals page.\n"
        "  From a shell: .venv/bin/python manage.py workflows approvals list --user ada\n\n"
    )


def run_demo(out: SupportsWrite[str], port: int) -> None:
    """Start a worker process and the development server; Ctrl-C stops both."""
    import socket

    from django.core.management import CommandError, call_command

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise CommandError(
                f"port {port} is already in use; stop what runs there or pick another (PORT=8080 ./scripts/demo)"
            )
    setup_demo(out, port)
    log_path = Path(settings.BASE_DIR) / "var" / "worker.log"
    mail_dir = Path(settings.BASE_DIR) / "var" / "mail"
    # The worker sends the approval notifications: into var/mail, printed here as they come.
    mail_env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(mail_dir),
        "WORKFLOWS_BASE_URL": f"http://127.0.0.1:{port}",
    }  # fmt: skip
    stop_mail = demo_mail.start(mail_dir, out)
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "workflows", "worker"],
            env={**os.environ, **mail_env},
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    out.write(f"  Worker running (pid {worker.pid}, log {log_path}); the mail it sends is shown below.\n\n")

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM both stop the server, then the worker (even when started with SIGINT ignored).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        stop_mail.set()
        out.write("Stopping the worker...\n")
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(40)
        except subprocess.TimeoutExpired:
            worker.kill()
