"""What the demo starts, so that a newcomer sees every pattern at once: finished runs, a
sleeping one, one failing and retrying, instances waiting for approval."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

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


PEOPLE = [
    ("ada", "finance: approves expenses; away this week, erin stands in", ["finance"], False),
    ("bob", "finance: approves expenses (a large one needs ada and bob)", ["finance"], False),
    ("carol", "director: may approve any request open to approvers", ["directors"], True),
    ("dave", "employee: asks for things, may read everything, decides nothing", [], False),
    ("erin", "stands in for ada while she is away: sees and decides her requests", [], False),
]


def create_people(password: str) -> list[tuple[str, str]]:
    """The demo's users and groups (same password as admin); returns (username, what they do)."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.auth.models import User as Account

    approve = Permission.objects.get(codename="approve_instance")
    for username, _, groups, approver in PEOPLE:
        account = Account.objects.filter(username=username).first() or Account(
            username=username, email=f"{username}@example.com"
        )
        account.set_password(password)
        account.save()
        for name in groups:
            account.groups.add(Group.objects.get_or_create(name=name)[0])
        if approver:
            account.user_permissions.add(approve)
    _ada_is_away()
    return [(username, role) for username, role, _, _ in PEOPLE]


def _ada_is_away() -> None:
    """ada is away for a week and erin decides for her (set once; the Away page changes it)."""
    from django.contrib.auth.models import User as Account

    from workflows import approvals, now

    ada, erin = Account.objects.get(username="ada"), Account.objects.get(username="erin")
    if not approvals.absences(ada):
        start = now()
        approvals.set_away(ada, delegate=erin, starts=start, ends=start + timedelta(days=7), note="holiday")


def receipt_image(what: str, amount: str) -> bytes:
    """A small receipt drawn with Pillow, for the expense approvals' thumbnails."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (360, 240), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 10, 350, 230], outline=(120, 120, 120), width=2)
    draw.text((30, 30), "RECEIPT", fill=(40, 40, 40))
    draw.text((30, 80), what, fill=(40, 40, 40))
    draw.text((30, 120), f"Total: {amount}", fill=(20, 20, 120))
    draw.text((30, 190), "Paid by card", fill=(110, 110, 110))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def start_examples(base_url: str, password: str) -> list[tuple[str, str]]:
    """Create the demo's people and instances (skipping ids that exist); returns who can log in."""
    people = create_people(password)
    from examples.models import User
    from workflows.bindings import env

    env.BUCKET.put("uploads/sunset.png", demo_image())
    env.BUCKET.put("receipts/ticket.png", receipt_image("Conference ticket", "420.00 EUR"))
    env.BUCKET.put("receipts/laptop.png", receipt_image("Laptop, 14 inch", "1,900.00 EUR"))
    for i in range(6):
        env.BUCKET.put(f"incoming/report-{i}.txt", ("line of a report\n" * (200 + i * 40)).encode())
    User.objects.get_or_create(id="u-ada", defaults={"email": "ada@example.com", "subscription_status": "trial"})
    User.objects.get_or_create(id="u-bob", defaults={"email": "bob@example.com", "subscription_status": "active"})

    for workflow, instance_id, params in _plan(base_url):
        get_workflow(workflow).create_batch([{"id": instance_id, "params": params}])
    # The scheduled chain: what today's 09:00 UTC slot created (a cron firing twice for a slot creates one).
    from workflows.schedules import fire

    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    fire("daily", "0 9 * * *", today.isoformat())
    return people


def _plan(base_url: str) -> list[tuple[str, str, dict]]:
    """(workflow, instance id, params) of each example instance the demo starts."""
    from examples.views import source_url

    return [
        ("image-processing", "demo-sunset", {"imageKey": "uploads/sunset.png"}),
        ("user-lifecycle", "demo-ada", {"userId": "u-ada", "email": "ada@example.com"}),
        ("data-pipeline", "demo-import", {"sourceUrl": source_url(base_url, rows=250)}),
        (
            "data-pipeline",
            "demo-flaky-source",
            {"sourceUrl": source_url(base_url, rows=10, fail_first=1000, name="flaky")},
        ),
        ("approval", "demo-request-17", {"userId": "dave", "summary": "Work from Lisbon in May"}),
        (
            "expense",
            "demo-expense-18",
            {"userId": "dave", "summary": "Conference ticket", "amount": 420, "receiptKey": "receipts/ticket.png"},
        ),
        (
            "expense",
            "demo-expense-19",
            {"userId": "dave", "summary": "New laptop", "amount": 1900, "receiptKey": "receipts/laptop.png"},
        ),
        (
            "expense",
            "demo-expense-20",
            {
                "userId": "dave",
                "summary": "Team dinner",
                "amount": 180,
                # Minutes instead of hours, to watch the policy: a reminder every 2 min, the
                # directors added at 3 min, rejected by itself at 6 min if nobody decides.
                "remindEvery": "2m",
                "escalateAfter": "3m",
                "timeout": "6m",
            },
        ),  # fmt: skip
        ("order", "demo-order-7", {"orderId": "A-7", "amount": 42}),
        ("fan-out", "demo-reports", {"prefix": "incoming/"}),
        ("parent", "demo-parent", {"data": {"order": 42}}),
        ("race", "demo-race", {}),
        ("race-naive", "demo-race-naive", {}),
        ("flaky-export", "demo-export", {}),
        # A cohort that fails at the same step: retry it from one filter on the list page.
        *[("flaky-export", f"demo-export-night-{n}", {"batch": "night"}) for n in range(1, 7)],
    ]
