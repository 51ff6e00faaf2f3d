"""`manage.py workflows demo`: a login to print, an instance to look at, a worker and the web server."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model

from workflows.definition import registered

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

LOGIN_FILE = Path(settings.BASE_DIR) / "var" / "demo-login.txt"


def setup_demo(out: SupportsWrite[str], port: int = 8000) -> None:
    username = "admin"
    if LOGIN_FILE.exists():
        password = LOGIN_FILE.read_text().strip()
    else:
        password = secrets.token_urlsafe(9)
        LOGIN_FILE.parent.mkdir(exist_ok=True)
        LOGIN_FILE.write_text(password + "\n")
    User = get_user_model()
    user = User.objects.filter(username=username).first() or User(username=username, email="admin@example.com")
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()

    from django.conf import settings as django_settings

    starter = getattr(django_settings, "WORKFLOWS_DEMO_STARTER", None)
    if starter:
        from django.utils.module_loading import import_string

        import_string(starter)(f"http://127.0.0.1:{port}")
    out.write(
        "\n"
        f"  Open:       http://127.0.0.1:{port}/\n"
        f"  Login:      {username} / {password}\n"
        f"  Workflows:  {', '.join(sorted(registered()))}\n"
        "  Example instances are starting: some finish, one sleeps for 7 days, one keeps failing and\n"
        "  retrying, two wait for approval. From a shell, try:\n"
        "    .venv/bin/python manage.py workflows list\n"
        "    .venv/bin/python manage.py workflows instances send-event approval demo-expense-17 \\\n"
        "        --type approval-response --payload '{\"approved\": true}'\n\n"
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
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "workflows", "worker"],
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    out.write(f"  Worker running (pid {worker.pid}, log {log_path}).\n\n")

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
        out.write("Stopping the worker...\n")
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(40)
        except subprocess.TimeoutExpired:
            worker.kill()
