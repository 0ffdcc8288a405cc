"""A websocket outlives the request that opened it: the login (session) or API token it
was opened with is checked again every ``TOOLTRAIL_WS_REAUTH_SECONDS``, and the socket
is closed (code 4401) once that login ended or the token was revoked or expired."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db.models import Q
from django.db.models.functions import Now

from .models import ApiToken, token_hash


@dataclass(frozen=True)
class WsCredential:
    """How a socket's user proved who they are."""

    user_id: int
    session_key: str = ""
    token_digest: str = ""

    @classmethod
    def of_session(cls, *, user, session_key: str | None) -> WsCredential:
        return cls(user_id=user.pk, session_key=session_key or "")

    @classmethod
    def of_token(cls, *, user, raw: str) -> WsCredential:
        return cls(user_id=user.pk, token_digest=token_hash(raw))


def ws_credential_valid(credential: WsCredential) -> bool:
    """Whether the login or token still stands for the same active user."""
    if not get_user_model().objects.filter(pk=credential.user_id, is_active=True).exists():
        return False
    if credential.token_digest:
        return (
            ApiToken.objects.filter(
                digest=credential.token_digest, user_id=credential.user_id, revoked_at=None
            )
            .filter(Q(expires_at=None) | Q(expires_at__gt=Now()))
            .exists()
        )
    if not credential.session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(credential.session_key)
    # A logged-out session is deleted (its key loads as an empty session); an expired
    # one loads empty too.
    return str(store.get(SESSION_KEY, "")) == str(credential.user_id)


class ReadOnlySessionMiddleware(SessionMiddleware):
    """Channels' ``SessionMiddleware`` for websockets, without its ``send`` wrapper.

    That wrapper looks at every message sent, to save a changed session with an HTTP
    response; a websocket has no response to carry a cookie, and no consumer here changes
    the session. At 100 viewers of a live trace, it was 5-8% of the server's CPU.
    """

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def websocket_auth_stack(inner):
    """Cookies, the session (read only) and the user in the scope, as Channels'
    ``AuthMiddlewareStack`` gives them."""
    return CookieMiddleware(ReadOnlySessionMiddleware(AuthMiddleware(inner)))
