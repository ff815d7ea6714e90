"""Health probes for load balancers, systemd and the run command."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from greenlights.selectors import health_status


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    status = await health_status()
    return JsonResponse(status, status=200 if status["ok"] else 503)
