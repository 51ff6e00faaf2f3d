"""A limit on failed token authentications per client address: guessing tokens gets 429s.

Counted in the database (every web process and machine adds to one figure) in 5-minute
windows; an address with ``settings.API_TOKEN_FAILURE_LIMIT`` failures (20 by default) in
the current and previous window is refused
before its token is even looked up, until the windows pass. Successful calls are never
slowed. The address is the one django-axes uses for logins (``PROXY_COUNT`` aware).
"""

from __future__ import annotations

import time

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.db import connection
from django.http import HttpRequest

from api.models import AuthFailure

WINDOW_SECONDS = 300


def _window() -> int:
    return int(time.time() // WINDOW_SECONDS)


def address_of(request: HttpRequest) -> str:
    return (get_client_ip_address(request) or "unknown")[:45]


def retry_after(request: HttpRequest) -> int:
    """Seconds until ``request``'s address may try tokens again (0: it may now)."""
    now = _window()
    recent = AuthFailure.objects.filter(address=address_of(request), window__gte=now - 1)
    if sum(recent.values_list("count", flat=True)) < settings.API_TOKEN_FAILURE_LIMIT:
        return 0
    return int((now + 1) * WINDOW_SECONDS - time.time()) + 1


def failed(request: HttpRequest) -> None:
    """Count one failed token authentication (one statement, race-free)."""
    with connection.cursor() as cursor:
        cursor.execute(
            # "window" is a reserved word in PostgreSQL: quoted.
            'INSERT INTO api_auth_failure (address, "window", count) VALUES (%s, %s, 1) '
            'ON CONFLICT (address, "window") DO UPDATE SET count = api_auth_failure.count + 1',
            [address_of(request), _window()],
        )
    AuthFailure.objects.filter(window__lt=_window() - 2).delete()  # old windows are of no use
