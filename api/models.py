"""Per-user API tokens: shown once when created, stored only as a SHA-256 hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

PREFIX = "wf_"


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="what the token is for")
    prefix = models.CharField(max_length=12, unique=True, help_text="the token's first characters, to recognise it")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}, {self.name or 'unnamed'})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
        """A new token for ``user``; returns the row and the secret (never stored, shown once)."""
        secret = PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=secret[:12], token_hash=hash_token(secret))
        return token, secret

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class AuthFailure(models.Model):
    """Failed token authentications from one address in one 5-minute window (see ``api.throttle``)."""

    address = models.CharField(max_length=45)
    window = models.BigIntegerField()  # the window's start, in 5-minute units since the epoch
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "api_auth_failure"
        constraints = [models.UniqueConstraint(fields=["address", "window"], name="api_auth_failure_key")]
