"""An open websocket follows its login: it is closed (4401) once the user logs out or
the token it was opened with is revoked or expires, within TOOLTRAIL_WS_REAUTH_SECONDS
(a minute at most; shortened here)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from tooltrail.asgi import application
from tooltrail.models import ApiToken
from tooltrail.services import api_token_authenticate, api_token_create, api_token_revoke
from traces.services import trace_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_recheck(settings):
    settings.TOOLTRAIL_WS_REAUTH_SECONDS = 0.2


def socket_closes(path: str, headers: list[tuple[bytes, bytes]], end_login) -> dict:
    """Open the socket, check it is open, end the login, return what the socket got."""

    async def scenario() -> dict:
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.receive_output(timeout=5)  # the trace's state
        assert await communicator.receive_nothing(timeout=0.6)  # still open
        await sync_to_async(end_login)()
        try:
            while True:
                message = await communicator.receive_output(timeout=10)
                if message["type"] == "websocket.close":
                    return message
        finally:
            await communicator.disconnect()

    return async_to_sync(scenario)()


def test_a_socket_closes_when_its_user_logs_out(client, make_user):
    client.force_login(make_user("anna", "annotator"))
    trace = trace_create(name="t", input="x")
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"origin", b"http://127.0.0.1")]
    closed = socket_closes(
        f"/ws/traces/{trace.id}/", headers, lambda: client.post("/accounts/logout/")
    )
    assert closed == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_socket_closes_when_its_token_is_revoked_or_expires(make_user, how):
    token, raw = api_token_create(user=make_user("bot", "viewer"))
    trace = trace_create(name="t", input="x")
    headers = [(b"authorization", f"Bearer {raw}".encode()), (b"origin", b"http://127.0.0.1")]

    def end() -> None:
        if how == "revoked":
            api_token_revoke(token=token)
        else:
            ApiToken.objects.filter(pk=token.pk).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )

    closed = socket_closes(f"/ws/traces/{trace.id}/?format=json", headers, end)
    assert closed == {"type": "websocket.close", "code": 4401}


def test_an_expired_token_is_refused_and_expiry_is_bounded(make_user):
    user = make_user("bot", "viewer")
    token, raw = api_token_create(user=user, expires_in_days=1)
    assert api_token_authenticate(raw=raw) == user
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_token_authenticate(raw=raw) is None
    with pytest.raises(ValueError, match="1 to 3650 days"):
        api_token_create(user=user, expires_in_days=0)


def test_the_token_page_makes_tokens_that_expire(client, make_user):
    client.force_login(make_user("anna", "annotator"))
    response = client.post("/tokens/", {"name": "ci", "expires_in_days": "7"}, follow=True)
    assert response.redirect_chain == [("/tokens/", 302)] and response.context["new_token"]
    token = ApiToken.objects.get(name="ci")
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)
    bad = client.post("/tokens/", {"name": "x", "expires_in_days": "²"}, follow=True)
    assert bad.status_code == 200 and not ApiToken.objects.filter(name="x").exists()
    assert "whole number of days" in bad.content.decode()
