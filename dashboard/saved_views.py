"""Saved views: a user names the instance list's current filter; it appears in the navigation."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from dashboard.forms import InstanceFilterForm
from dashboard.models import SavedView

if TYPE_CHECKING:
    from dashboard.http import AuthenticatedHttpRequest

MAX_VIEWS = 30


def clean_query(raw: str) -> str:
    """Only the list's own filters are kept (no cursor, nothing else)."""
    allowed = {"from" if f == "start" else "to" if f == "end" else f for f in InstanceFilterForm.FILTERS}
    return urlencode([(k, v) for k, v in parse_qsl(raw) if k in allowed and v])[:1000]


@login_required
@require_POST
def save_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    name = (request.POST.get("name") or "").strip()[:60]
    query = clean_query(request.POST.get("query") or "")
    target = reverse("dashboard:instances") + (f"?{query}" if query else "")
    if not name:
        messages.error(request, "Give the view a name.")
    elif SavedView.objects.filter(user=request.user).count() >= MAX_VIEWS:
        messages.error(request, f"You have {MAX_VIEWS} saved views already; delete one first.")
    else:
        try:
            SavedView.objects.create(user=request.user, name=name, query=query)
            messages.success(request, f"Saved as “{name}”: it is in the navigation under Views.")
        except IntegrityError:
            messages.error(request, f"You already have a view named “{name}”.")
    return redirect(target)


@login_required
@require_POST
def delete_view(request: AuthenticatedHttpRequest, view_id: int) -> HttpResponse:
    SavedView.objects.filter(user=request.user, pk=view_id).delete()
    return redirect("dashboard:instances")
