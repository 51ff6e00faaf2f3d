"""``python manage.py demo_switch export-service on|off``: flip a switch the demo's workflows read."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from examples.models import DemoSwitch


class Command(BaseCommand):
    help = "Turn a demo switch on or off (the flaky export succeeds once 'export-service' is on)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="the switch, e.g. export-service")
        parser.add_argument("state", choices=["on", "off"])

    def handle(self, *args: Any, name: str, state: str, **options: Any) -> None:
        DemoSwitch.objects.update_or_create(name=name, defaults={"on": state == "on"})
        self.stdout.write(f"{name} is {state}.")
