"""The dashboard in a real browser (Debian's Chromium driven by Playwright), against a live
server and a real worker process, used the way people use it: typing at human speed,
leaving things open through several live updates, two people deciding one request. Any
error in the browser's console fails the test. Screenshots land in test-artifacts/."""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# there are ordinary synchronous calls, which Django would otherwise refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from examples.demo import demo_image, receipt_image  # noqa: E402
from tests.testapp.ledger import ledger_dir  # noqa: E402
from workflows import approvals, get_workflow  # noqa: E402
from workflows.bindings import env  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ARTIFACTS = (
    Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts")) / "screenshots"
)
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
TYPING_DELAY_MS = 90  # a person's typing speed: a 40-character comment takes several polls


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
def people(db):
    finance = Group.objects.create(name="finance")
    for name in ("ada", "bob", "dave"):
        user = User.objects.create_user(name, f"{name}@example.com", PASSWORD)
        if name != "dave":
            user.groups.add(finance)
            user.user_permissions.add(Permission.objects.get(codename="approve_instance"))
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    root.save()


@pytest.fixture
def login(browser, live_server, worker_runner, people):
    """``login(name)``: a browser page logged in as that person; console errors are collected
    and fail the test at the end, except those a test declares with ``login.expect_console``
    (a page that answers 410 on purpose is logged by the browser as a failed load)."""
    contexts, problems, expected = [], [], []

    def open_as(username, width=1280, log_in=True):
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("console", lambda m: m.type == "error" and problems.append(f"{username}: console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"{username}: page error: {e}"))
        page.base = live_server.url
        if not log_in:
            return page
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Log in')")
        expect(page.locator("h1")).to_have_text("Workflows")
        return page

    open_as.expect_console = expected.append
    yield open_as
    for context in contexts:
        context.close()
    unexpected = [p for p in problems if not any(text in p for text in expected)]
    assert unexpected == [], "the browser reported errors:\n" + "\n".join(unexpected)


def loaded_width(image):
    """The image's natural width once it has loaded (lazy images load when shown)."""
    image.scroll_into_view_if_needed()
    return image.evaluate(
        "img => img.complete ? img.naturalWidth : new Promise((done, failed) => {"
        " img.addEventListener('load', () => done(img.naturalWidth));"
        " img.addEventListener('error', () => failed(new Error('the image did not load'))); })"
    )


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_status(runner, handle, status, timeout=30):
    runner.wait(lambda: handle.status()["status"] == status, f"{handle.id} to be {status}", timeout)


def test_two_people_complete_a_two_signature_expense_and_a_form_error_keeps_what_was_typed(login, worker_runner):
    env.BUCKET.put("receipts/laptop.png", receipt_image("Laptop", "1,900.00 EUR"))
    params = {"userId": "dave", "summary": "New laptop", "amount": 1900, "receiptKey": "receipts/laptop.png"}
    handle = get_workflow("expense").create(id="laptop", params=params)
    wait_status(worker_runner, handle, "waiting")
    ada = login("ada")
    ada.goto(f"{ada.base}/inbox/")
    card = ada.locator("article.approval-card", has_text="Expense from dave: New laptop")
    expect(card).to_contain_text("0 of 2 approvals")
    expect(ada.locator("#inbox-count")).to_have_text("1")
    image = card.locator("img.thumb")
    expect(image).to_be_visible()
    assert loaded_width(image) > 0, "the receipt's thumbnail loads"
    # A slip: no amount. The error shows beside the field and the comment typed stays.
    card.locator("textarea").press_sequentially("Checked the receipt against the order", delay=TYPING_DELAY_MS)
    card.locator("button:has-text('Approve')").click()
    expect(card.locator(".errorlist")).to_contain_text("This field is required.")
    expect(card.locator("textarea")).to_have_value("Checked the receipt against the order")
    shot(ada, "inbox-form-error")
    card.get_by_label("Approved amount (EUR)").press_sequentially("1850", delay=TYPING_DELAY_MS)
    card.get_by_label("Cost centre").select_option("rnd")
    card.locator("button:has-text('Approve')").click()
    expect(card).to_contain_text("Approved expense/laptop")
    expect(card).to_contain_text("1 of 2 approvals, by ada")
    shot(ada, "inbox-first-signature")
    bob = login("bob")
    bob.goto(f"{bob.base}/inbox/")
    bob_card = bob.locator("article.approval-card", has_text="New laptop")
    expect(bob_card).to_contain_text("1 of 2 approvals, by ada")
    bob_card.get_by_label("Approved amount (EUR)").fill("1850")
    bob_card.get_by_label("Cost centre").select_option("rnd")
    bob_card.locator("textarea").press_sequentially("Second signature", delay=TYPING_DELAY_MS)
    bob_card.locator("button:has-text('Approve')").click()
    expect(bob_card).to_contain_text("the request is now approved")
    wait_status(worker_runner, handle, "complete")
    bob.goto(f"{bob.base}/instances/expense/laptop/")
    expect(bob.locator(".summary .badge").first).to_have_text("complete")
    step = bob.locator("li.step", has_text="finance approval")
    expect(step).to_contain_text("by ada")
    expect(step).to_contain_text("Second signature")
    shot(bob, "timeline-approved-expense")
    # ada's inbox empties on its own (live update), badge included.
    expect(ada.locator("article.approval-card")).to_have_count(0, timeout=15_000)
    expect(ada.locator("#inbox-count")).to_be_hidden()


def test_a_comment_typed_slowly_survives_live_updates_and_nobody_decides_their_own_request(login, worker_runner):
    for n in range(2):
        get_workflow("t-approval").create(
            id=f"slow-{n}", params={"title": f"Request {n}", "approvers": ["group:finance"]}
        )
    own = get_workflow("t-approval").create(id="own", params={"title": "Ada's own", "requested_by": "ada"})
    wait_status(worker_runner, own, "waiting")
    ada = login("ada")
    ada.goto(f"{ada.base}/inbox/")
    expect(ada.locator("article.approval-card")).to_have_count(2)
    assert "Ada's own" not in ada.content()
    comment = ada.locator("article.approval-card", has_text="Request 0").locator("textarea")
    comment.click()
    for word in ("Looks ", "fine ", "to ", "me, ", "once ", "the ", "budget ", "is ", "confirmed"):
        comment.press_sequentially(word, delay=TYPING_DELAY_MS)
        ada.wait_for_timeout(900)  # the inbox polls every 5 s: several polls pass while typing
    # A new request arrives meanwhile; the live update adds it without touching the comment.
    get_workflow("t-approval").create(id="slow-late", params={"title": "Late arrival", "approvers": ["user:ada"]})
    expect(ada.locator("article.approval-card", has_text="Late arrival")).to_be_visible(timeout=20_000)
    expect(comment).to_have_value("Looks fine to me, once the budget is confirmed")
    expect(comment).to_be_focused()
    shot(ada, "inbox-typing-kept")


def test_bulk_approval_reports_each_item_with_the_refused_one(login, worker_runner):
    handles = [
        get_workflow("t-approval").create(id=f"bulk-{n}", params={"title": f"Bulk {n}", "approvers": ["group:finance"]})
        for n in range(3)
    ]
    for handle in handles:
        wait_status(worker_runner, handle, "waiting")
    bob = login("bob")
    bob.goto(f"{bob.base}/inbox/")
    for n in range(3):
        bob.locator("article.approval-card", has_text=f"Bulk {n}").locator("input.tick").check()
    # Meanwhile ada decides one of them: bob's bulk decision is refused for that one only.
    ada = User.objects.get(username="ada")
    request = next(r for r in approvals.pending(ada) if r.title == "Bulk 1")
    approvals.decide(request.id, user=ada, approved=False, comment="duplicate")
    bob.fill("#bulk input[name=comment]", "approved in the Monday review")
    bob.click("#bulk button:has-text('Approve ticked')")
    messages = bob.locator(".messages")
    expect(messages).to_contain_text("t-approval/bulk-0: decided (approved)")
    expect(messages).to_contain_text("t-approval/bulk-2: decided (approved)")
    expect(messages).to_contain_text(f"Request {request.id}: refused:")
    expect(messages).to_contain_text("already closed: rejected by ada")
    shot(bob, "inbox-bulk-results")


def test_an_open_traceback_stays_open_and_retrying_the_failed_step_keeps_its_history(login, worker_runner):
    handle = get_workflow("t-fixable").create(id="fix-me")
    wait_status(worker_runner, handle, "errored")
    root = login("root")
    root.goto(f"{root.base}/instances/t-fixable/fix-me/")
    expect(root.locator(".error-box")).to_contain_text("ConnectionError: the service is down")
    first_error = root.locator(".steps > ol > li.step", has_text="call").locator("details.attempt-error").first
    first_error.locator("summary").click()
    expect(first_error).to_have_attribute("open", "")
    open(os.path.join(ledger_dir(), "fix-me.fixed"), "w").close()  # the cause is fixed
    root.once("dialog", lambda dialog: dialog.accept())
    root.click("button:has-text('Retry from failed step')")
    expect(root.locator(".messages")).to_contain_text("Retrying from step 'call'")
    expect(root.locator(".summary .badge").first).to_have_text("complete", timeout=30_000)
    earlier = root.locator(".steps > ol > li.step", has_text="call").locator("details.earlier")
    expect(earlier).to_contain_text("1 earlier run of this step")
    earlier.locator("summary").first.click()
    expect(earlier).to_contain_text("ConnectionError")
    expect(root.locator(".audit")).to_contain_text("root restarted it from “call” via dashboard")
    shot(root, "instance-retried-history")


def test_a_live_timeline_keeps_an_expanded_traceback_open_while_it_updates(login, worker_runner):
    handle = get_workflow("t-flaky").create(id="flaky", params={"fail": 1, "retries": {"limit": 1, "delay": 8}})
    worker_runner.wait(lambda: handle.status()["status"] == "waiting", "the first attempt to fail", 30)
    root = login("root")
    root.goto(f"{root.base}/instances/t-flaky/flaky/")
    expect(root.locator(".live-dot")).to_be_visible()
    traceback = root.locator("details.attempt-error").first
    traceback.locator("summary").click()
    expect(traceback.locator("pre")).to_contain_text("ConnectionError: attempt 1 failed")
    root.wait_for_timeout(5000)  # two or three polls of the live timeline, the step still retrying
    expect(traceback).to_have_attribute("open", "")
    expect(root.locator(".summary .badge").first).to_have_text("complete", timeout=30_000)
    expect(traceback).to_have_attribute("open", "")  # the last update, too, kept it open
    expect(root.locator(".steps > ol > li.step", has_text="call")).to_contain_text("2 attempts")
    expect(root.locator(".lane")).to_have_count(2)  # the axis and the step's lane
    expect(root.locator("rect.seg-failed")).to_have_count(1)
    expect(root.locator("rect.seg-delay")).to_have_count(1)
    shot(root, "instance-retried-live")


def test_terminating_a_waiting_request_updates_the_page_the_inbox_and_the_badge(login, worker_runner):
    env.BUCKET.put("uploads/sunset.png", demo_image())
    handle = get_workflow("image-processing").create(id="sunset", params={"imageKey": "uploads/sunset.png"})
    wait_status(worker_runner, handle, "waiting")
    root = login("root")
    root.goto(f"{root.base}/inbox/")
    card = root.locator("article.approval-card", has_text="Publish uploads/sunset.png?")
    expect(card.locator("img.thumb")).to_be_visible()
    assert loaded_width(card.locator("img.thumb")) > 0
    expect(root.locator("#inbox-count")).to_have_text("1")
    shot(root, "inbox-image")
    root.goto(f"{root.base}/instances/image-processing/sunset/")
    root.once("dialog", lambda dialog: dialog.accept())
    root.click("button:has-text('Terminate')")
    expect(root.locator(".summary .badge").first).to_have_text("terminated")
    step = root.locator("li.step", has_text="await approval")
    expect(step.locator(".badge").first).to_have_text("cancelled")
    expect(step).not_to_contain_text("Approve")
    expect(root.locator("#inbox-count")).to_be_hidden()
    root.goto(f"{root.base}/inbox/")
    expect(root.locator("article.approval-card")).to_have_count(0)
    shot(root, "instance-terminated")


def test_the_overview_and_a_workflow_page_fit_a_phone(login, worker_runner):
    handle = get_workflow("t-counter").create(id="phone", params={"steps": 2})
    wait_status(worker_runner, handle, "complete")
    phone = login("ada", width=390)
    for path in ("/", "/workflows/t-counter/", "/instances/", "/instances/t-counter/phone/", "/inbox/"):
        phone.goto(f"{phone.base}{path}")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px screen"
    shot(phone, "phone-instance")


def test_an_emailed_link_asks_for_a_login_then_decides_once(login, worker_runner):
    import re

    from tests.mail import sent_mail

    handle = get_workflow("t-approval").create(
        id="linked", params={"title": "Team offsite", "approvers": ["user:bob"], "timeout": "2h"}
    )
    wait_status(worker_runner, handle, "waiting")
    # The worker mails bob his personal link; he opens it from his mail, not logged in yet.
    mailed = worker_runner.wait(
        lambda: [body for to, subject, body in sent_mail() if to == "bob@example.com" and "Team offsite" in subject],
        "bob's mail",
    )
    path = "/" + re.search(r"https?://\S+?/(approvals/link/\S+/)", mailed[0]).group(1)
    bob = login("bob", log_in=False)
    bob.goto(f"{bob.base}{path}")
    expect(bob.locator("h1")).to_have_text("Log in")
    bob.locator("input[name=username]").press_sequentially("bob", delay=TYPING_DELAY_MS)
    bob.locator("input[name=password]").press_sequentially(PASSWORD, delay=TYPING_DELAY_MS)
    bob.click("button:has-text('Log in')")
    expect(bob.locator("h1")).to_have_text("Your decision")
    card = bob.locator("article.approval-card", has_text="Team offsite")
    expect(card).to_be_visible()
    bob.wait_for_timeout(6_000)  # he reads it for a while: opening the page decided nothing
    assert handle.status()["status"] == "waiting"
    shot(bob, "link-decision-page")
    card.locator("textarea").press_sequentially("Book the venue", delay=TYPING_DELAY_MS)
    card.locator("button:has-text('Approve')").click()
    expect(card).to_contain_text("the request is now approved")
    wait_status(worker_runner, handle, "complete")
    assert handle.status()["output"]["by"] == "bob"
    login.expect_console("status of 410 (Gone)")  # the used link's page answers 410, as it should
    bob.goto(f"{bob.base}{path}")  # the link works once
    expect(bob.locator("[role=alert]")).to_contain_text("already been used")
    shot(bob, "link-used")
