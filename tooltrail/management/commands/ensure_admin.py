import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from tooltrail.services import roles_sync


class Command(BaseCommand):
    help = "Create the admin login if there is none (password from TOOLTRAIL_ADMIN_PASSWORD, else printed once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default=os.environ.get("TOOLTRAIL_ADMIN_USER", "admin"))

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        username = options["username"]
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin login: {username} (already exists; password unchanged)")
            return
        password = os.environ.get("TOOLTRAIL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        roles_sync()
        user.groups.add(Group.objects.get(name="admin"))
        if os.environ.get("TOOLTRAIL_ADMIN_PASSWORD"):
            self.stdout.write(f"Admin login: {username} (password from TOOLTRAIL_ADMIN_PASSWORD)")
        else:
            self.stdout.write(
                f"Admin login: {username} / {password}   (shown once; change it in /admin/)"
            )
