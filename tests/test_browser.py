"""The dashboard in a real browser (Debian's Chromium driven by Playwright), against a live
server and a real worker process. Screenshots of each page land in test-artifacts/."""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# there are ordinary synchronous calls, which Django would otherwise refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from django.contrib.auth.models import User  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.testapp.ledger import ledger_dir  # noqa: E402
from workflows import get_workflow  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ARTIFACTS = (
    Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts")) / "screenshots"
)
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser (scripts/test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, worker_runner):
    User.objects.create_superuser("ada", "ada@example.com", "correct horse")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "correct horse")
    page.click("button:has-text('Log in')")
    expect(page.locator("h1")).to_have_text("Workflows")
    page.base = live_server.url
    yield page
    context.close()


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def waiting(runner, handle):
    runner.wait(lambda: handle.status()["status"] == "waiting", f"{handle.id} to wait", 30)


@pytest.mark.parametrize(
    "decision,outcome,said", [("Approve", "approved", "Approved"), ("Reject", "rejected", "Rejected")]
)
def test_deciding_in_the_inbox_and_watching_the_timeline_complete(page, worker_runner, decision, outcome, said):
    handle = get_workflow("approval").create(
        id=f"req-{outcome}", params={"userId": "u-ada", "summary": "Conference ticket, 420 EUR"}
    )
    waiting(worker_runner, handle)
    page.goto(f"{page.base}/inbox/")
    card = page.locator("article", has_text=f"req-{outcome}")
    expect(card).to_contain_text("A request from u-ada: Conference ticket, 420 EUR")
    expect(page.locator("#inbox-count")).to_have_text("1")
    shot(page, "inbox")
    card.locator("textarea").fill("Within budget" if outcome == "approved" else "Not this quarter")
    card.locator(f"button:has-text('{decision}')").click()
    expect(page.locator(".messages")).to_contain_text(f"{said} approval/req-{outcome}.")
    expect(page.locator("article", has_text=f"req-{outcome}")).to_have_count(0)
    page.goto(f"{page.base}/instances/approval/req-{outcome}/")
    expect(page.locator(".summary .badge").first).to_have_text("complete", timeout=30_000)  # live updates, no reload
    expect(page.locator(".decision-note")).to_contain_text(f"{said} by ada")
    expect(page.locator(".summary")).to_contain_text(outcome)
    shot(page, f"instance-{outcome}")


def test_retrying_a_failed_step_from_the_timeline(page, worker_runner):
    handle = get_workflow("t-fixable").create(id="fix-me")
    worker_runner.wait(lambda: handle.status()["status"] == "errored", "fix-me to fail", 30)
    page.goto(f"{page.base}/instances/t-fixable/fix-me/")
    expect(page.locator(".error-box")).to_contain_text("ConnectionError: the service is down")
    page.locator(".attempt-error").first.click()
    shot(page, "instance-errored")
    open(os.path.join(ledger_dir(), "fix-me.fixed"), "w").close()  # the cause is fixed
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Retry from failed step')")
    expect(page.locator(".messages")).to_contain_text("Retrying from step 'call'")
    expect(page.locator(".summary .badge").first).to_have_text("complete", timeout=30_000)
    expect(page.locator(".audit")).to_contain_text("ada retry from “call”")
    shot(page, "instance-retried")


def test_the_timeline_updates_live_while_a_sleep_ends(page, worker_runner):
    open(os.path.join(ledger_dir(), "nap.fixed"), "w").close()
    handle = get_workflow("t-fixable").create(id="nap", params={"pause": 8})
    waiting(worker_runner, handle)
    page.goto(f"{page.base}/instances/t-fixable/nap/")
    expect(page.locator(".summary .badge").first).to_have_text("waiting")
    expect(page.locator(".step.k-sleep")).to_contain_text("Wakes in")
    shot(page, "instance-sleeping")
    expect(page.locator(".summary .badge").first).to_have_text("complete", timeout=30_000)
    expect(page.locator(".step.k-sleep")).to_contain_text("Woke")
    page.goto(f"{page.base}/instances/?workflow=t-fixable")
    expect(page.locator("#instance-rows")).to_contain_text("nap")
    shot(page, "instances")
    page.goto(f"{page.base}/")
    shot(page, "overview")
