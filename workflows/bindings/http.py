"""``HTTP``: fetch a URL from a step without opening the server to the network behind it.

A workflow's params often carry a URL someone else chose. Fetched naively, ``file:///etc/...``
reads a local file into a step's output, and ``http://127.0.0.1:5432/`` or the cloud's
metadata address reaches what only the server can. This binding allows http(s) only;
resolves the host once and refuses loopback, link-local, private, reserved, multicast and
unspecified addresses (unless the host is listed in ``allowed_hosts`` or
``allow_private`` is set); connects to the address it checked (a second DNS answer cannot
swap it); follows at most ``max_redirects`` redirects, checking each one the same way;
stops reading past ``max_bytes``; and gives up after ``timeout`` seconds.

    WORKFLOWS["BINDINGS"]["HTTP"] = {"BACKEND": "workflows.bindings.http.SafeHTTP",
                                     "OPTIONS": {"allowed_hosts": ["data.internal"], "max_bytes": 10_485_760}}

    response = self.env.HTTP.get(url)        # a Response: .status, .headers, .body, .json()

A refused URL raises ``URLRefused`` (a ``NonRetryableError``: retrying cannot help).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from workflows.errors import NonRetryableError

REDIRECTS = {301, 302, 303, 307, 308}


class URLRefused(NonRetryableError):
    """The URL is not one this server may fetch (scheme, address, size or redirects)."""


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class SafeHTTP:
    """GET with the rules above. Options: ``allowed_hosts``, ``allow_private``, ``max_bytes``,
    ``timeout``, ``max_redirects``."""

    def __init__(
        self,
        allowed_hosts: Sequence[str] = (),
        allow_private: bool = False,
        max_bytes: int = 10 * 2**20,
        timeout: float = 30,
        max_redirects: int = 5,
    ) -> None:
        self.allowed_hosts = {h.lower().rstrip(".") for h in allowed_hosts}
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects

    def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        deadline = time.monotonic() + self.timeout
        for _ in range(self.max_redirects + 1):
            response = self._get_once(url, headers or {}, deadline)
            if response.status not in REDIRECTS or "location" not in response.headers:
                return response
            url = urljoin(url, response.headers["location"])
        raise URLRefused(f"more than {self.max_redirects} redirects, the last to {url!r:.200}")

    # ----------------------------------------------------------------------- one request

    def _get_once(self, url: str, headers: dict[str, str], deadline: float) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise URLRefused(
                f"only http and https URLs may be fetched, not {parts.scheme or 'a relative'} URL {url!r:.200}"
            )
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise URLRefused(f"the URL {url!r:.200} names no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self.checked_address(host, port)
        remaining = max(0.1, deadline - time.monotonic())
        connection = _connection(parts.scheme, host, port, address, remaining)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", path, headers={"Host": parts.netloc.rsplit("@", 1)[-1], **headers})
            answer = connection.getresponse()
            body = answer.read(self.max_bytes + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionError(f"fetching {url!r:.200} failed: {exc}") from None
        finally:
            connection.close()
        if len(body) > self.max_bytes:
            raise URLRefused(f"the response from {url!r:.200} is larger than {self.max_bytes:,} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError(f"fetching {url!r:.200} took longer than {self.timeout} s")
        return Response(url, answer.status, {k.lower(): v for k, v in answer.getheaders()}, body)

    def checked_address(self, host: str, port: int) -> str:
        """The address to connect to: every address the host resolves to must be allowed."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectionError(f"cannot resolve {host!r}: {exc}") from None
        addresses = [str(info[4][0]) for info in found]
        if host not in self.allowed_hosts and not self.allow_private:
            for address in addresses:
                reason = _internal(address)
                if reason:
                    raise URLRefused(
                        f"{host!r} resolves to {address}, a {reason} address: refused (list the host in the HTTP "
                        "binding's allowed_hosts to allow it)"
                    )
        return addresses[0]


def _internal(address: str) -> str:
    """Why an address is off limits ("" when it is a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for reason, flag in (
        ("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("private", ip.is_private),
        ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved),
    ):  # fmt: skip
        if flag:
            return reason
    return ""


def _connection(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to ``address`` that still speaks to ``host`` (TLS name check included)."""
    if scheme == "https":
        return _PinnedHTTPS(host, port, address, timeout=timeout, context=ssl.create_default_context())
    return _PinnedHTTP(host, port, address, timeout=timeout)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
