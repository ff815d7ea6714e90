"""Closing a stale call from the console: a call open in the record that no web process
carries any more (``calls.selectors.call_is_stale``) is ended by a supervisor, with a reason.

Thin: the service decides and refuses (``calls.services.call_close_stale``); the view
answers htmx with a small partial, or the refusal's text and a 4xx status.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from calls import services
from calls.models import Call


@staff_member_required
@permission_required("calls.change_call", raise_exception=True)
@require_POST
def close_stale(request: HttpRequest, uuid: str) -> HttpResponse:
    """POST ``reason``: end the stale call; 400 for a missing or long reason, 409 for a
    call that is not stale (ended, or still carried), each with the reason in words."""
    call = get_object_or_404(Call, uuid=uuid)
    try:
        reason = services.stale_reason_clean(reason=request.POST.get("reason", ""))
    except services.CallCloseRefused as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    try:
        call = services.call_close_stale(call=call, reason=reason, by=request.user)
    except services.CallCloseRefused as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    return render(request, "console/_stale_closed.html", {"call": call})
