"""A personal decision link from a notification: GET shows the request, only a POST decides.

Mail scanners and link-preview bots open links, so opening one never decides anything.
The addressee logs in first (the login page brings them back here) unless the project
opted into token-only links; a link opened by someone else, used already, expired or
altered shows why it cannot be used, with a way to the inbox.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from dashboard import approval_cards
from workflows import approvals

# How each refusal answers: a link that can never work again is "gone".
STATUS_OF_REFUSAL = {"link_foreign": 403, "link_used": 410, "link_expired": 410, "link_invalid": 404}


@require_http_methods(["GET", "POST"])
def decision_link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        opened = approvals.open_link(token, request.user)
    except approvals.DecisionRefused as refused:
        if refused.reason == "login_required":
            return redirect_to_login(request.get_full_path())
        problem = {"problem": str(refused), "reason": refused.reason}
        return render(request, "dashboard/link.html", problem, status=STATUS_OF_REFUSAL.get(refused.reason, 400))
    context: dict[str, Any] = {"addressee": opened.addressee, "nav": "inbox"}
    if request.method == "GET":
        context["card"] = approval_cards.card(opened.request, opened.acting_user, action=request.path)
        return render(request, "dashboard/link.html", context)
    outcome = approval_cards.decide_from_post(
        opened.request.id, opened.acting_user, request.POST, action=request.path,
        via=lambda **decision: approvals.decide_by_link(token, request.user, **decision),
    )  # fmt: skip
    context.update(card=outcome.card, decided_message=outcome.message if outcome.decided else "")
    if getattr(request, "htmx", False):
        return render(request, "dashboard/_approval_card.html", context)
    return render(request, "dashboard/link.html", context, status=200 if outcome.decided else 422)
