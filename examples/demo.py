"""What the demo starts, so that a newcomer sees every pattern at once: finished runs, a
sleeping one, one failing and retrying, instances waiting for approval."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

from workflows import get_workflow


def demo_image() -> bytes:
    """A small sunset-coloured PNG drawn with Pillow (no files shipped, nothing downloaded)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 200), (255, 140, 40))
    draw = ImageDraw.Draw(img)
    for y in range(200):
        draw.line([(0, y), (320, y)], fill=(255 - y // 2, 120 + y // 4, 40 + y // 2))
    draw.ellipse([120, 120, 200, 200], fill=(255, 220, 80))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def start_examples(base_url: str) -> list[str]:
    """Create the demo instances (skipping ids that exist); returns the ids created."""
    from examples.models import User
    from examples.views import source_url
    from workflows.bindings import env

    env.BUCKET.put("uploads/sunset.png", demo_image())
    for i in range(6):
        env.BUCKET.put(f"incoming/report-{i}.txt", ("line of a report\n" * (200 + i * 40)).encode())
    User.objects.get_or_create(id="u-ada", defaults={"email": "ada@example.com", "subscription_status": "trial"})
    User.objects.get_or_create(id="u-bob", defaults={"email": "bob@example.com", "subscription_status": "active"})

    plan = [
        ("image-processing", "demo-sunset", {"imageKey": "uploads/sunset.png"}),
        ("user-lifecycle", "demo-ada", {"userId": "u-ada", "email": "ada@example.com"}),
        ("data-pipeline", "demo-import", {"sourceUrl": source_url(base_url, rows=250)}),
        (
            "data-pipeline",
            "demo-flaky-source",
            {"sourceUrl": source_url(base_url, rows=10, fail_first=1000, name="flaky")},
        ),
        ("approval", "demo-expense-17", {"userId": "u-ada", "summary": "Conference ticket, 420 EUR"}),
        ("approval", "demo-expense-18", {"userId": "u-bob", "summary": "New laptop, 1,900 EUR"}),
        ("fan-out", "demo-reports", {"prefix": "incoming/"}),
        ("parent", "demo-parent", {"data": {"order": 42}}),
        ("race", "demo-race", {}),
        ("race-naive", "demo-race-naive", {}),
        ("flaky-export", "demo-export", {}),
    ]
    created = []
    for workflow, instance_id, params in plan:
        created += [h.id for h in get_workflow(workflow).create_batch([{"id": instance_id, "params": params}])]
    # The scheduled chain: what today's 09:00 UTC slot created (a cron firing twice for a slot creates one).
    from workflows.schedules import fire

    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    created += fire("daily", "0 9 * * *", today.isoformat())
    time.sleep(0)
    return created
