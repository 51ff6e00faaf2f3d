"""The approval inbox with Django's test client: each person's own work, deciding from a card
(form errors inline, typing kept), bulk decisions, history, images, and who may see what."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User

from tests.helpers import run, start
from workflows import WorkflowError, approvals, clock
from workflows.bindings import env
from workflows.models import ApprovalDecision

pytestmark = pytest.mark.usefixtures("engine")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def team(db):
    finance = Group.objects.create(name="finance")
    people = {}
    for name in ("ada", "bob", "dave"):
        people[name] = User.objects.create_user(name, password="pw")
    people["ada"].groups.add(finance)
    people["bob"].groups.add(finance)
    olga = User.objects.create_user("olga", password="pw")
    olga.user_permissions.add(Permission.objects.get(codename="operate_instance"))
    people["olga"] = olga
    return people


def as_user(client, user):
    client.force_login(user)
    return client


def ask(id, **params):
    instance = start("t-approval", {"approvers": ["group:finance"], **params}, id=id)
    run(instance)
    return instance, _request(id)


def _request(instance_id):
    return next(r for r in approvals.pending() if r.instance_id == instance_id)


def test_each_person_sees_their_own_requests_and_the_badge_counts_them(client, team):
    ask("mine-1", title="Laptop for {requested_by}", requested_by="dave")
    ask("mine-2", title="Desk", requested_by="ada")
    page = as_user(client, team["ada"]).get("/inbox/").content.decode()
    assert "Laptop for dave" in page and "Desk" not in page, "never your own request"
    assert 'id="inbox-count" title="approval requests waiting for you">1</span>' in page
    bob = as_user(client, team["bob"]).get("/inbox/").content.decode()
    assert "Laptop for dave" in bob and "Desk" in bob
    dave = as_user(client, team["dave"]).get("/inbox/").content.decode()
    assert "Nothing waits for you" in dave and "hidden>0</span>" in dave


def test_the_all_open_tab_is_for_operators(client, team):
    ask("all-1", title="Chair")
    assert as_user(client, team["ada"]).get("/inbox/?tab=all").status_code == 403
    page = as_user(client, team["olga"]).get("/inbox/?tab=all").content.decode()
    assert "Chair" in page and 'hx-post="/approvals/' not in page, "olga sees it but may not decide it"
    assert "olga is not an approver (group:finance)" in page


def test_a_card_shows_details_quorum_progress_requester_and_deadline(client, team):
    env.BUCKET.put("receipts/r-1.png", _png())
    _, request = ask(
        "card-1", title="Expense {requested_by}", requested_by="dave", quorum=2, timeout="48h",
        details={"Amount": 1900, "Receipt": approvals.Image("receipts/r-1.png")},
    )  # fmt: skip
    approvals.decide(request.id, user=team["bob"], approved=True, comment="ok")
    page = as_user(client, team["ada"]).get("/inbox/").content.decode()
    assert "Expense dave" in page and "<dd>1,900</dd>" in page and "asked by <strong>dave</strong>" in page
    assert "1 of 2 approvals, by bob" in page and "due <time" in page and "in 2 d" in page
    assert f'src="/approvals/{request.id}/image/?key=receipts/r-1.png"' in page


def _png():
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (900, 600), (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


def test_images_are_served_only_to_logged_in_users_and_only_those_a_request_shows(client, team):
    env.BUCKET.put("receipts/r-2.png", _png())
    env.BUCKET.put("secret/payroll.png", _png())
    _, request = ask("img-1", details={"Receipt": approvals.Image("receipts/r-2.png")})
    url = f"/approvals/{request.id}/image/"
    assert client.get(url, {"key": "receipts/r-2.png"}).status_code == 302
    client = as_user(client, team["dave"])
    response = client.get(url, {"key": "receipts/r-2.png"})
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    import io

    from PIL import Image

    assert max(Image.open(io.BytesIO(response.content)).size) <= 480, "a thumbnail, not the original"
    assert client.get(url, {"key": "secret/payroll.png"}).status_code == 404
    assert client.get(url, {"key": "../../etc/passwd"}).status_code == 404


def test_deciding_from_a_card_with_htmx_answers_the_card_and_the_workflow_resumes(client, team):
    instance, request = ask("htmx-1")
    response = as_user(client, team["ada"]).post(
        f"/approvals/{request.id}/decide/", {"decision": "approve", f"r{request.id}-comment": "go"}, headers=HTMX
    )
    card = response.content.decode()
    assert response.status_code == 200 and "<html" not in card and f'id="request-{request.id}"' in card
    assert "Approved t-approval/htmx-1" in card and "the request is now approved" in card
    assert run(instance)["output"]["comment"] == "go"


def test_invalid_form_data_comes_back_inline_with_what_was_typed(client, team):
    instance, request = ask("form-1", form="spend")
    prefix = f"r{request.id}"
    response = as_user(client, team["ada"]).post(
        f"/approvals/{request.id}/decide/",
        {"decision": "approve", f"{prefix}-approved_amount": "-12", f"{prefix}-comment": "typed slowly"},
        headers=HTMX,
    )
    card = response.content.decode()
    assert "the form is not valid" in card and 'value="-12"' in card and "typed slowly</textarea>" in card
    assert "Ensure this value is greater than or equal to 0." in card and "This field is required." in card
    assert not ApprovalDecision.objects.exists()
    client.post(
        f"/approvals/{request.id}/decide/",
        {"decision": "approve", f"{prefix}-approved_amount": "12.50", f"{prefix}-cost_centre": "rnd"},
        headers=HTMX,
    )
    assert str(run(instance)["output"]["data"]["approved_amount"]) == "12.50"


def test_deciding_without_htmx_redirects_back_with_the_outcome(client, team):
    _, request = ask("plain-1", requested_by="ada")
    response = as_user(client, team["ada"]).post(
        f"/approvals/{request.id}/decide/", {"decision": "approve"}, follow=True
    )
    assert "is ada&#x27;s own request: they may not decide it" in response.content.decode()
    response = as_user(client, team["bob"]).post(
        f"/approvals/{request.id}/decide/", {"decision": "reject", "next": "/inbox/?tab=decided"}, follow=True
    )
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/inbox/?tab=decided" and "Rejected t-approval/plain-1" in page


def test_a_bulk_decision_reports_each_item_including_refusals(client, team):
    ids = [ask(f"bulk-{n}", requested_by="dave" if n else "ada")[1].id for n in range(3)]
    with_form = ask("bulk-form", form="spend")[1].id
    page = as_user(client, team["ada"]).get("/inbox/").content.decode()
    assert f'value="{with_form}" form="bulk"' not in page, "a request with a form is decided on its own"
    response = client.post("/inbox/bulk/", {"selected": ids, "decision": "approve", "comment": "batch"}, follow=True)
    text = response.content.decode()
    assert f"Request {ids[0]}: refused:" in text and "own request" in text
    assert f"Request {ids[1]}: t-approval/bulk-1: decided (approved)" in text
    assert ApprovalDecision.objects.filter(comment="batch").count() == 2


def test_the_history_filters_by_decider_outcome_and_workflow(client, team):
    _, one = ask("hist-1", title="First")
    _, two = ask("hist-2", title="Second")
    approvals.decide(one.id, user=team["ada"], approved=True)
    approvals.decide(two.id, user=team["bob"], approved=False)
    client = as_user(client, team["ada"])
    mine = client.get("/inbox/?tab=decided").content.decode()
    assert "First" in mine and "Second" not in mine
    everyone = client.get("/inbox/?tab=decided&decider=any&outcome=rejected").content.decode()
    assert "Second" in everyone and "First" not in everyone
    assert "No user named" in client.get("/inbox/?tab=decided&decider=nobody").content.decode()


def test_live_updates_render_only_the_items_and_refresh_the_badge(client, team):
    ask("live-1", title="Poll me")
    fragment = as_user(client, team["ada"]).get("/inbox/?tab=mine", headers={**HTMX, "HX-Target": "inbox-items"})
    text = fragment.content.decode()
    assert "<html" not in text and "Poll me" in text and 'id="inbox-count"' in text and 'hx-swap-oob="true"' in text


def test_the_timeline_shows_approvers_progress_and_every_decision(client, team):
    instance, request = ask("tl-1", quorum=2, title="Two signatures")
    approvals.decide(request.id, user=team["bob"], approved=True, comment="first signature")
    page = as_user(client, team["ada"]).get(f"/instances/t-approval/{instance.id}/").content.decode()
    assert "Two signatures" in page and "1 of 2 approvals" in page and "group:finance" in page
    assert "by <strong>bob</strong>" in page and "first signature" in page and "via python" in page
    assert f'hx-post="/approvals/{request.id}/decide/"' in page, "ada can decide it right there"
    clock.advance(timedelta(hours=2))
    assert "hx-post" not in client.get(f"/instances/t-approval/{instance.id}/").content.decode()


def test_a_long_inbox_lists_the_soonest_fifty_and_shows_more_on_request(client, team):
    for i in range(55):
        start("t-approval", {"approvers": ["group:finance"], "title": f"Request {i:02d}"}, id=f"many-{i}")
    run()
    assert approvals.count_pending(team["ada"]) == 55
    found, total = approvals.pending_page(team["ada"], limit=50)
    assert total == 55 and len(found) == 50
    assert [r.id for r in found] == [r.id for r in approvals.pending(team["ada"])][:50], "the same order"
    page = as_user(client, team["ada"]).get("/inbox/").content.decode()
    assert page.count('id="request-') == 50
    assert "Showing the 50 soonest of 55" in page and "show=100" in page and "Show 5 more" in page
    assert 'title="approval requests waiting for you">55</span>' in page, "the badge counts them all"
    more = client.get("/inbox/?show=100").content.decode()
    assert more.count('id="request-') == 55 and "Showing the" not in more
    assert client.get("/inbox/?show=nonsense").status_code == 200


def test_counting_can_stop_past_a_cap_and_then_says_one_more_than_it(team):
    for i in range(5):
        start("t-approval", {"approvers": ["group:finance"], "title": f"Request {i}"}, id=f"capped-{i}")
    run()
    ada = team["ada"]
    assert approvals.count_pending(ada) == 5, "exact without a cap"
    assert approvals.count_pending(ada, up_to=3) == 4, "4 = more than 3"
    assert approvals.count_pending(ada, up_to=5) == 5 and approvals.count_pending(ada, up_to=9) == 5
    found, total = approvals.pending_page(ada, limit=2, count_up_to=3)
    assert len(found) == 2 and total == 4
    assert approvals.pending_page(ada, limit=2)[1] == 5
    found, total = approvals.pending_page(ada, limit=10, count_up_to=3)
    assert len(found) == 5 and total == 5, "the total is never below the page"
    now = clock.now()
    approvals.set_away(team["bob"], delegate=ada, starts=now, ends=now + timedelta(days=1))
    assert approvals.count_pending(ada, up_to=3) == 4 and approvals.pending_page(ada, limit=2, count_up_to=3)[1] == 4
    assert approvals.pending_page(ada, limit=10, count_up_to=3)[1] == 5, "standing in: never below the page either"
    for nonsense in (-1, 2.5, "10", True):
        with pytest.raises(WorkflowError, match="whole number of requests, 0 or more"):
            approvals.count_pending(ada, up_to=nonsense)
        with pytest.raises(WorkflowError, match="count_up_to must be"):
            approvals.pending_page(ada, count_up_to=nonsense)


def test_past_the_count_cap_the_badge_and_the_inbox_say_more_than_it(client, team, monkeypatch):
    from dashboard import inbox_count, inbox_views

    monkeypatch.setattr(inbox_count, "COUNTED_UP_TO", 4)
    monkeypatch.setattr(inbox_views, "PAGE", 2)
    for i in range(6):
        start("t-approval", {"approvers": ["group:finance"], "title": f"Request {i}"}, id=f"over-{i}")
    run()
    page = as_user(client, team["ada"]).get("/inbox/").content.decode()
    assert page.count('id="request-') == 2
    assert "Showing the 2 soonest of more than 4." in page and "Show 2 more" in page
    assert 'title="approval requests waiting for you">4+</span>' in page
    last = client.get("/inbox/?show=4").content.decode()
    assert last.count('id="request-') == 4 and "Showing the 4 soonest of more than 4." in last
    assert "show=6" not in last, "no link past the most the inbox lists"
    assert 'title="approval requests waiting for you">4+</span>' in client.get("/instances/").content.decode()
