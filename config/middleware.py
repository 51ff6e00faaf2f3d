"""Bad input never reaches the database as a 500: a clear 400 instead, JSON under /api/.

- A NUL character anywhere in the path, the query string or a form field is refused before
  any view runs (PostgreSQL cannot store it in text, so it could only ever fail later).
- A value the database refuses anyway (``DataError``: out of range, not storable), text that
  is not valid Unicode (``UnicodeEncodeError``: a lone surrogate) or input nested too deeply
  (``RecursionError``) becomes a 400 naming the problem, whatever view met it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def bad_request(request: HttpRequest, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "invalid_request", "message": message}}, status=400)
    return HttpResponseBadRequest(f"Bad request: {message}\n", content_type="text/plain; charset=utf-8")


class RejectBadInput:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = self._nul(request)
        if where:
            return bad_request(request, f"{where} contains a NUL character (\\x00), which no field accepts")
        return self.get_response(request)

    @staticmethod
    def _nul(request: HttpRequest) -> str:
        if "\x00" in request.path:
            return "the path"
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return f"the query parameter {key.replace(chr(0), '?')!r}"
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            try:
                fields = list(request.POST.lists())
            except RequestDataTooBig:
                return ""  # the view answers that one
            for key, values in fields:
                if "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in values):
                    return f"the form field {key.replace(chr(0), '?')!r}"
        return ""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, UnicodeEncodeError):
            return bad_request(request, "a value is not valid Unicode text (it contains half of a surrogate pair)")
        if isinstance(exception, RecursionError):
            return bad_request(request, "the input is nested too deeply")
        if isinstance(exception, DataError):
            first_line = str(exception).strip().splitlines()[0] if str(exception).strip() else "not storable"
            return bad_request(request, f"a value cannot be stored: {first_line}")
        return None
