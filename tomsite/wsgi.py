"""WSGI entry point, for management tools that want one; TOM itself is served over ASGI."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")

application = get_wsgi_application()
