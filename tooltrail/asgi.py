"""ASGI entry point: HTTP through Django (static files included), websockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from traces.api_ingest import IngestBackpressure  # noqa: E402
from traces.routing import websocket_urlpatterns  # noqa: E402

from .ws_auth import websocket_auth_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": IngestBackpressure(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(
            websocket_auth_stack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Everything loaded so far (Django, the apps, their modules: 145,000 objects) lives until
# the server stops. A full pass of the collector walked all of it, 75 ms during which no
# socket got a frame; frozen, the collector's passes skip it.
gc.freeze()
