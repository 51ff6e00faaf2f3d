"""``python manage.py apitokens create|list|revoke``: API tokens for scripts and other services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import ApiToken


class Command(BaseCommand):
    help = "Create (shown once), list and revoke API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="action")
        create = sub.add_parser("create", help="create a token for a user; the secret is printed once")
        create.add_argument("username")
        create.add_argument("--name", default="", help="what the token is for")
        listing = sub.add_parser("list", help="tokens without their secrets")
        listing.add_argument("--username", default=None)
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix (see list)")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, action: str | None = None, **options: Any) -> None:
        if action == "create":
            user = get_user_model().objects.filter(username=options["username"]).first()
            if user is None:
                raise CommandError(f"no user named {options['username']!r}")
            token, secret = ApiToken.issue(user, options["name"])
            self.stdout.write(secret)
            self.stderr.write(f"Token {token.prefix}… for {user.username}. Store it now: it is not shown again.")
        elif action == "list":
            tokens = ApiToken.objects.select_related("user").order_by("created_at")
            if options["username"]:
                tokens = tokens.filter(user__username=options["username"])
            for t in tokens:
                state = "revoked" if t.revoked_at else "active"
                self.stdout.write(f"{t.prefix}…  {t.user.username:<16} {state:<8} {t.name}")
        elif action == "revoke":
            found = ApiToken.objects.filter(prefix=options["prefix"].rstrip("…")).first()
            if found is None:
                raise CommandError(f"no token with prefix {options['prefix']!r}")
            found.revoke()
            self.stdout.write(f"Revoked {found.prefix}….")
