from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tooltrail.services import api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it (it is not stored and cannot be shown again)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="1 to 3650; default: never"
        )

    def handle(self, *args, **options) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}")
        try:
            _, raw = api_token_create(
                user=user, name=options["name"][:100], expires_in_days=options["expires_in_days"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)
