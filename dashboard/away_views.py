"""Away and delegation: "away from D1 to D2, delegate to X", and the absences one stands in for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from dashboard.forms import AwayForm
from workflows import WorkflowError, approvals

if TYPE_CHECKING:
    from dashboard.http import AuthenticatedHttpRequest


@login_required
@require_http_methods(["GET", "POST"])
def away(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = AwayForm(request.POST if request.method == "POST" else None)
    problems: list[str] = []
    if request.method == "POST":
        problems = _set_away(request, form)
        if not problems:
            return redirect("dashboard:away")
    context = {
        "form": form, "problems": problems, "nav": "away",
        "absences": approvals.absences(request.user), "standing_in_for": approvals.standing_in_for(request.user),
        "colleagues": get_user_model().objects.filter(is_active=True).exclude(pk=request.user.pk).order_by("username"),
    }  # fmt: skip
    return render(request, "dashboard/away.html", context, status=422 if problems else 200)


def _set_away(request: AuthenticatedHttpRequest, form: AwayForm) -> list[str]:
    if not form.is_valid():
        return form.error_list()
    data = form.cleaned_data
    delegate = get_user_model().objects.filter(username=data["delegate"], is_active=True).first()
    if delegate is None:
        return [f"There is no active user named {data['delegate']!r}."]
    try:
        approvals.set_away(request.user, delegate=delegate, starts=data["starts"], ends=data["ends"], note=data["note"])
    except WorkflowError as exc:
        return [str(exc).capitalize() + "."]
    messages.success(request, f"Saved: {delegate.get_username()} decides your requests while you are away.")
    return []


@login_required
@require_POST
def cancel_away(request: AuthenticatedHttpRequest, absence_id: int) -> HttpResponse:
    try:
        approvals.cancel_away(request.user, absence_id)
    except WorkflowError as exc:
        messages.warning(request, str(exc).capitalize() + ".")
    else:
        messages.success(request, "Absence cancelled: your requests come to you again.")
    return redirect("dashboard:away")
