"""The Approvals page: how long each workflow waits on people, and what is waiting now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import approval_chart
from workflows import approvals

if TYPE_CHECKING:
    from dashboard.http import AuthenticatedHttpRequest


@login_required
@require_GET
def approval_stats(request: AuthenticatedHttpRequest) -> HttpResponse:
    figures = approvals.stats()
    context = {"figures": figures, "chart": approval_chart.build(figures), "nav": "approvals"}
    return render(request, "dashboard/approvals.html", context)
