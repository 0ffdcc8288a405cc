from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from .consumers import TraceConsumer, TraceListConsumer


class NoSuchSocket(AsyncWebsocketConsumer):
    """Any other websocket path: refused (4404) rather than a routing exception."""

    async def connect(self) -> None:
        await self.close(code=4404)


websocket_urlpatterns = [
    path("ws/traces/", TraceListConsumer.as_asgi()),
    path("ws/traces/<uuid:trace_id>/", TraceConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),
]
