from django.urls import path

from .consumers import TraceConsumer, TraceListConsumer

websocket_urlpatterns = [
    path("ws/traces/", TraceListConsumer.as_asgi()),
    path("ws/traces/<uuid:trace_id>/", TraceConsumer.as_asgi()),
]
