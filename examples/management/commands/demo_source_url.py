"""``python manage.py demo_source_url [--rows N]``: a signed URL of the demo's JSON source.

The data pipeline fetches ``sourceUrl``; the demo serves rows itself (offline), at a URL
only the project can sign. The base is the demo's address: http://127.0.0.1:$PORT (8000).
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from examples.views import source_url


class Command(BaseCommand):
    help = "Print a signed URL of the demo's JSON source (for the data pipeline's sourceUrl)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--rows", type=int, default=250, help="how many rows it serves (1 to 10,000)")

    def handle(self, *args: Any, rows: int, **options: Any) -> None:
        rows = max(1, min(rows, 10_000))
        self.stdout.write(source_url(f"http://127.0.0.1:{os.environ.get('PORT', '8000')}", rows=rows))
