"""``python manage.py workflows <command>``: run, trigger, inspect and control durable workflows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows import cli


class Command(BaseCommand):
    help = "Durable workflows: `worker` runs the workers; list, describe, trigger and instances operate them."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True, metavar="command")
        worker = sub.add_parser("worker", help="run django-q2 workers plus the dispatcher (timers, recovery)")
        worker.add_argument(
            "--workers", type=int, default=None, help="worker processes (default: WORKFLOWS['WORKERS'])"
        )
        demo = sub.add_parser("demo", help="the demo: a worker plus the web server, with a printed login")
        demo.add_argument("--port", type=int, default=8000)
        cli.add_arguments(sub)

    def handle(self, *args: Any, command: str | None = None, **options: Any) -> None:
        if command == "worker":
            from workflows.engine.worker import run_worker

            workers = options.get("workers")
            if workers is not None and workers < 1:
                raise CommandError(f"--workers must be at least 1, got {workers}")
            run_worker(workers)
            return
        if command == "demo":
            from workflows.demo import run_demo

            run_demo(self.stdout, options["port"])
            return
        cli.run(command, options, self.stdout)
