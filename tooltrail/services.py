"""Accounts: roles and API tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from .models import ApiToken, token_hash

TOKEN_PREFIX = "tt_"
LAST_USED_RESOLUTION = timedelta(seconds=60)

# What builders may do: create, edit, duplicate and delete agents, endpoints and toolsets
# (each app's own model permissions).
BUILDER_PERMISSIONS = [
    f"{app}.{verb}_{model}"
    for app, model in (("agents", "agent"), ("agents", "modelendpoint"), ("toolsapp", "toolset"))
    for verb in ("add", "change", "delete")
]

# Role → permissions (app_label.codename). Admins are superusers and also get the group.
# Decided (docs/security.md): annotators may cancel anyone's run, as they may start
# runs and read every trace; viewers may do neither.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    "admin": [
        "agents.run_agent",
        "agents.run_experiment",
        "agents.run_job",
        "traces.cancel_trace",
        "traces.change_trace",
        "traces.delete_trace",
        "traces.annotate",
        "traces.adjudicate",
        "traces.export",
        "traces.ingest_traces",
        "toolsapp.run_tool",
        "toolsapp.import_tools",
        *BUILDER_PERMISSIONS,
    ],
    "builder": [
        "agents.run_agent",
        "traces.cancel_trace",
        "toolsapp.run_tool",
        *BUILDER_PERMISSIONS,
    ],
    "annotator": [
        "agents.run_agent",
        "traces.cancel_trace",
        "traces.change_trace",
        "traces.annotate",
        "traces.ingest_traces",
        "toolsapp.run_tool",
    ],
    "viewer": [],
}


@transaction.atomic
def roles_sync() -> None:
    """Create the admin, builder, annotator and viewer groups with their permissions."""
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            wanted.extend(
                Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


def user_role(user) -> str:
    if not user.is_authenticated:
        return "anonymous"
    if user.is_superuser:
        return "admin"
    names = set(user.groups.values_list("name", flat=True))
    for role in ("admin", "builder", "annotator", "viewer"):
        if role in names:
            return role
    return "viewer"


MAX_TOKEN_DAYS = 3650


def api_token_create(
    *, user, name: str = "default", expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """Make a token for ``user``, valid for ``expires_in_days`` days (None: until
    revoked). Returns the row and the raw token, which is not stored anywhere and cannot
    be shown again. Raises ValueError for a number of days out of 1..3650."""
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise ValueError(f"a token expires in 1 to {MAX_TOKEN_DAYS} days")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name or "default",
        prefix=raw[:10],
        digest=token_hash(raw),
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    return token, raw


def api_token_authenticate(*, raw: str):
    """The active user a raw token belongs to (not revoked, not expired), or None."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=token_hash(raw), revoked_at=None)
        .filter(Q(expires_at=None) | Q(expires_at__gt=Now()))
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # At most one write a minute per token: a client polling every 500 ms must not
    # queue for the write lock (all of SQLite's) on every request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
