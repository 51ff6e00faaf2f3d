"""The approval inbox: my requests, every open one (operators), and the history of decisions.

A card's decision posts to ``decide``: with htmx the card alone is merged back (errors
inline, what was typed kept); without it the page redirects with a message. Bulk decisions
take the ticked cards (those without a form) and report each one's result. Thumbnails of
a request's images come from ``image``, for logged-in users only.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard import approval_cards, inbox_count
from dashboard.forms import BulkDecisionForm, DecidedFilterForm
from dashboard.http import back, require
from workflows import Permission, approvals, workflow_names

if TYPE_CHECKING:
    from dashboard.http import AuthenticatedHttpRequest, HtmxHttpRequest

TABS = ("mine", "all", "decided")
PAGE = 50  # cards per "show more": the most urgent first (10,000 open requests stay a small page)


def _shown(request: HttpRequest) -> int:
    """``?show=N``: how many cards to list (a multiple of PAGE, up to the count's cap)."""
    try:
        wanted = int(request.GET.get("show", PAGE))
    except ValueError:
        wanted = PAGE
    return min(max(PAGE, wanted - wanted % PAGE), inbox_count.COUNTED_UP_TO)


@login_required
@require_GET
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", "mine")
    if tab not in TABS:
        raise Http404(f"No inbox tab {tab!r}.")
    if tab == "all":
        require(request, Permission.OPERATE)
    context: dict[str, Any] = {
        "tab": tab,
        "can_see_all": request.user.has_perm(Permission.OPERATE),
        "workflow_names": workflow_names(),
        "nav": "inbox",
    }
    if tab == "decided":
        context.update(_history(request))
    else:
        show = _shown(request)
        mine = request.user if tab == "mine" else None
        found, total = approvals.pending_page(mine, limit=show, count_up_to=inbox_count.COUNTED_UP_TO)
        if tab == "mine":
            request.workflows_inbox_count = total  # type: ignore[attr-defined]  # the badge: same figure
        context["cards"] = approval_cards.cards(found, request.user)
        more = min(PAGE, total - len(found)) if show < inbox_count.COUNTED_UP_TO else 0
        context.update(total=total, total_text=inbox_count.total_text(total), show=show, more=more)
        context["next_show"] = show + PAGE
    if request.htmx and request.htmx.target == "inbox-items":
        return render(request, "dashboard/_inbox_items.html", context)
    return render(request, "dashboard/inbox.html", context)


def _history(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    form = DecidedFilterForm(request.GET)
    if not form.is_valid():
        return {"filters": form, "decided": [], "errors": form.error_list()}
    data = form.cleaned_data
    who = (data["decider"] or "me").strip()
    decider: Any = request.user if who == "me" else None
    if who not in ("me", "any"):
        decider = get_user_model().objects.filter(username=who).first()
        if decider is None:
            return {"filters": form, "decided": [], "errors": [f"No user named {who!r}."]}
    decided = approvals.decided(
        decider=decider, workflow=data["workflow"] or None, outcome=data["outcome"] or None, limit=100,
        since=datetime.combine(data["start"], time.min, tzinfo=UTC) if data["start"] else None,
        until=datetime.combine(data["end"], time.max, tzinfo=UTC) if data["end"] else None,
    )  # fmt: skip
    return {"filters": form, "decider": who, "decided": decided, "errors": []}


@login_required
@require_POST
def decide(request: HtmxHttpRequest, request_id: int) -> HttpResponse:
    """Decide one request from its card (the inbox's or the timeline's)."""
    outcome = approval_cards.decide_from_post(request_id, request.user, request.POST)
    if request.htmx:
        context = {"card": outcome.card, "decided_message": outcome.message if outcome.decided else ""}
        return render(request, "dashboard/_approval_card.html", context)
    if outcome.decided:
        messages.success(request, outcome.message)
    else:
        messages.warning(request, outcome.card.error)
    return back(request, reverse("dashboard:inbox"))


@login_required
@require_POST
def bulk_decide(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = BulkDecisionForm(request.POST)
    if not form.is_valid():
        for problems in form.errors.values():
            for message in problems:
                messages.error(request, str(message))
        return back(request, reverse("dashboard:inbox"))
    data = form.cleaned_data
    results = approval_cards.bulk_decide(request.user, data["selected"], data["decision"] == "approve", data["comment"])
    for request_id, decided, text in results:
        (messages.success if decided else messages.warning)(request, f"Request {request_id}: {text}")
    return back(request, reverse("dashboard:inbox"))


@login_required
@require_GET
def image(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    """A thumbnail of an image a request shows, read from the bucket (never a raw storage URL)."""
    key = request.GET.get("key", "")
    try:
        content, content_type = approvals.image_thumbnail(request_id, key)
    except approvals.DecisionRefused as exc:
        raise Http404(str(exc)) from None
    response = HttpResponse(content, content_type=content_type)
    response["Cache-Control"] = "private, max-age=300"
    response["Content-Disposition"] = "inline"
    return response
