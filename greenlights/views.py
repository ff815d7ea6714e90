"""Health probes for load balancers, systemd and the run command."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from greenlights.selectors import health_status
from voice.access import client_in


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 once the services answer and the process is warm (``warm``), 503
    until then, so a load balancer, ``tom_run`` and systemd send calls only to a
    process that answers the first like the tenth."""
    status = await health_status()
    response = JsonResponse(status, status=200 if status["ok"] else 503)
    if not status["ok"]:
        # A 503 here is an answer, not a server error: without this, django.request logs
        # an ERROR with the request for every probe while the models warm up (a load
        # balancer probes every 2 s). django.utils.log.log_response honours the flag.
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _may_scrape(request: HttpRequest) -> bool:
    token = settings.TOM_METRICS_TOKEN
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and constant_time_compare(offered.strip(), token):
        return True
    return client_in(request, settings.TOM_METRICS_ALLOWED_IPS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for holders of the bearer token, or for allowed addresses
    unless TOM runs behind a proxy (``voice.access.client_in``)."""
    if not _may_scrape(request):
        return HttpResponseForbidden("metrics are not public\n", content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
