"""ASGI entry point: ``daphne tomsite.asgi:application``.

HTTP goes to Django; WebSockets go to each app's ``routing.py``. The FreeSWITCH
fork routes authenticate themselves (JWT or basic auth in the handshake):
FreeSWITCH sends no Origin header, so an origin validator would refuse it.
Importing this module runs the startup checks (tomsite.startup): a misconfigured
web process exits before it serves anything. It also schedules the warm-up
(voice.warmup) for the server loop's first tick: daphne sends no ASGI lifespan events.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")

# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from tomsite.startup import startup_checks_run  # noqa: E402

startup_checks_run(component="web")  # before anything is served or written

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from calls.processes import calls_end_orphaned_on_startup  # noqa: E402
from tomsite import daphne_close_codes  # noqa: E402
from tomsite.proxy import TrustedProxyMiddleware  # noqa: E402
from tomsite.systemd import warm_status_notify  # noqa: E402
from voice.routing import websocket_urlpatterns  # noqa: E402
from voice.warmup import voice_warm_up_schedule  # noqa: E402

daphne_close_codes.install()  # 1007/1008/1009 closes of the fork contract
# Calls a crashed web process on this host left open end now, not hours later.
calls_end_orphaned_on_startup()
# Load the models and run one turn once the server's loop runs; /healthz answers 503
# and systemd hears READY=1 only after it (voice.warmup).
voice_warm_up_schedule(on_change=warm_status_notify)

http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.TOM_SERVE_STATIC else django_asgi_app

# Outermost, so Django, the consumers and every log see the client, not the proxy.
application = TrustedProxyMiddleware(ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
))
