"""Who is calling: a bearer token (other services, scripts) or the dashboard's session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from api import throttle
from api.errors import ApiError
from api.models import ApiToken, hash_token

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def authenticate(request: HttpRequest) -> tuple[User | None, str]:
    """Returns (user, via) with via "token" or "session", or (None, reason).

    Session calls get Django's CSRF check (the browser sends cookies on its own); token
    calls do not need it (a token is never sent implicitly).
    """
    header = request.headers.get("Authorization", "")
    if header:
        wait = throttle.retry_after(request)
        if wait:
            raise ApiError(
                429, "too_many_failures",
                f"too many failed token authentications from this address; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )  # fmt: skip
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            throttle.failed(request)
            return None, "the Authorization header must be 'Bearer <token>'"
        token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(secret.strip())).first()
        if token is None or not token.active or not token.user.is_active:
            throttle.failed(request)
            return None, "the API token is unknown or revoked"
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user, "token"
    if request.user.is_authenticated:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # Only the check runs: neither get_response nor the view is called, so neither needs to be real.
            failure = _CsrfCheck(lambda r: None).process_view(request, None, (), {})  # type: ignore[arg-type]
            if failure is not None:
                return None, f"CSRF check failed: {failure}"
        return request.user, "session"
    return None, "authentication required: send 'Authorization: Bearer <token>' or log in"
