"""Roles and API tokens: who may do what, and tokens shown once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from tooltrail.models import ApiToken, token_hash
from tooltrail.services import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    user_role,
)

pytestmark = pytest.mark.django_db


def test_each_role_gets_exactly_its_permissions(make_user):
    admin, annotator, viewer = (
        make_user("root", "admin"),
        make_user("anna", "annotator"),
        make_user("vic", "viewer"),
    )
    assert [user_role(u) for u in (admin, annotator, viewer)] == ["admin", "annotator", "viewer"]
    assert user_role(AnonymousUser()) == "anonymous"
    assert admin.has_perm("agents.run_agent")
    assert annotator.has_perm("agents.run_agent")
    assert not viewer.has_perm("agents.run_agent")


def test_a_token_is_stored_only_as_a_hash_and_authenticates_its_user(make_user):
    user = make_user("tess", "annotator")
    token, raw = api_token_create(user=user, name="ci")
    assert raw.startswith("tt_")
    assert token.prefix == raw[:10]
    assert token.digest == token_hash(raw)
    assert raw not in {token.digest, token.prefix, token.name}
    assert token.last_used_at is None

    assert api_token_authenticate(raw=raw) == user
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("raw", ["", "tt_", "tt_guess", "not-even-prefixed"])
def test_an_unknown_token_authenticates_nobody(make_user, raw):
    api_token_create(user=make_user("tess", "annotator"))
    assert api_token_authenticate(raw=raw) is None


def test_a_revoked_token_stops_working(client, make_user):
    token, raw = api_token_create(user=make_user("tess", "annotator"))
    api_token_revoke(token=token)
    assert api_token_authenticate(raw=raw) is None
    response = client.get("/api/runs", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401


def test_a_deactivated_users_token_stops_working(make_user):
    user = make_user("tess", "annotator")
    _, raw = api_token_create(user=user)
    user.is_active = False
    user.save()
    assert api_token_authenticate(raw=raw) is None


def test_the_token_page_creates_a_token_and_shows_it_once(client, make_user):
    user = make_user("tess", "viewer")
    client.force_login(user)
    posted = client.post("/tokens/", {"name": "laptop"})
    assert posted.status_code == 302 and posted["Location"] == "/tokens/"
    created = client.get("/tokens/")
    raw = created.context["new_token"]
    assert raw in created.content.decode()
    assert "not shown again" in created.content.decode()
    assert api_token_authenticate(raw=raw) == user
    assert ApiToken.objects.get(user=user).name == "laptop"

    # Reloading the page shows the token no more and makes no second one.
    later = client.get("/tokens/")
    assert raw not in later.content.decode()
    assert raw[:10] in later.content.decode()
    assert ApiToken.objects.filter(user=user).count() == 1


def test_the_token_page_revokes_only_your_own_tokens(client, make_user):
    mine, my_raw = api_token_create(user=make_user("tess", "viewer"))
    theirs, their_raw = api_token_create(user=make_user("otto", "viewer"))
    client.force_login(mine.user)

    assert client.post(f"/tokens/{theirs.pk}/revoke/").status_code == 404
    assert api_token_authenticate(raw=their_raw) == theirs.user

    response = client.post(f"/tokens/{mine.pk}/revoke/", follow=True)
    assert f"Token {mine.prefix}… revoked." in [str(m) for m in response.context["messages"]]
    assert api_token_authenticate(raw=my_raw) is None


def test_an_anonymous_json_client_gets_401_not_a_login_page(client):
    response = client.get("/traces/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required", "code": "unauthenticated"}


def test_an_api_path_without_credentials_is_refused_even_where_no_view_exists(client):
    # The middleware fails closed for /api/: no route, no decorator, still 401, not 404.
    response = client.get("/api/not-a-route")
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]


def test_using_a_token_stamps_last_used_at_most_once_a_minute(make_user):
    from datetime import timedelta

    from django.utils import timezone

    token, raw = api_token_create(user=make_user("poller"))
    assert api_token_authenticate(raw=raw) is not None
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    api_token_authenticate(raw=raw)
    token.refresh_from_db()
    assert token.last_used_at == first  # a poll a moment later writes nothing

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    api_token_authenticate(raw=raw)
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(seconds=1)
    assert token.last_used_at <= timezone.now()
