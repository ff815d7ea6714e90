"""Token minting for FreeSWITCH's dialplan (mod_curl): ``GET /fork/token?uuid=<call uuid>``.

Allowed with the shared secret ``TOM_FORK_TOKEN_SECRET`` (header ``X-Tom-Token-Secret``
or ``secret=``), or from ``TOM_FORK_TOKEN_ALLOWED_IPS`` unless TOM runs behind a proxy
(``voice.access.client_in``). The body is the bare token, so the dialplan can put
``${curl(...)}`` straight into the fork URL.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from voice.access import client_in
from voice.auth import JwtKeyError, fork_token_mint

logger = logging.getLogger(__name__)


def _client_allowed(request: HttpRequest) -> bool:
    secret = settings.TOM_FORK_TOKEN_SECRET
    offered = request.headers.get("X-Tom-Token-Secret") or request.GET.get("secret", "")
    if secret and offered and constant_time_compare(offered, secret):
        return True
    return client_in(request, settings.TOM_FORK_TOKEN_ALLOWED_IPS)


@never_cache
@require_GET
def fork_token(request: HttpRequest) -> HttpResponse:
    if not _client_allowed(request):
        logger.warning("fork.token_refused")
        return HttpResponseForbidden("not allowed to mint fork tokens\n", content_type="text/plain")
    call_uuid = request.GET.get("uuid", "").strip()
    if not call_uuid:
        # A token must name its call: one without could attach to any live call.
        return HttpResponse("uuid is required\n", status=400, content_type="text/plain")
    if len(call_uuid) > 64:
        return HttpResponse("uuid too long\n", status=400, content_type="text/plain")
    try:
        token = fork_token_mint(call_uuid=call_uuid)
    except JwtKeyError as exc:
        logger.error("fork.token_key_unusable", extra={"problem": str(exc)})
        return HttpResponse("token signing key is not configured\n", status=503,
                            content_type="text/plain")
    return HttpResponse(token, content_type="text/plain")
