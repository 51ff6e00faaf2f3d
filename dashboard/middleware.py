"""Every change made while serving a dashboard page is audited as the logged-in user, channel "dashboard"."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from workflows import acting


class ActingUser:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return self.get_response(request)  # the API sets its own actor once the token is checked
        with acting(request.user, "dashboard"):
            return self.get_response(request)
