"""What every dashboard view shares: typed requests, permission checks, safe redirects back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from workflows import Permission

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_htmx.middleware import HtmxDetails

    class AuthenticatedHttpRequest(HttpRequest):
        user: User  # every view here is login_required

    class HtmxHttpRequest(AuthenticatedHttpRequest):
        htmx: HtmxDetails  # set by django-htmx's HtmxMiddleware


def require(request: HttpRequest, permission: Permission) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"This needs the permission {permission.value}.")


def back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next") or fallback
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = fallback
    return redirect(target)
