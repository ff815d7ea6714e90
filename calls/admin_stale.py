"""The admin action "Close stale calls…": a confirmation page that asks why, then the
service closes each selected call that is stale and leaves the others alone."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from calls import selectors, services
from calls.models import Call


def close_stale_action(model_admin: admin.ModelAdmin[Call], request: HttpRequest,
                       queryset: QuerySet[Call]) -> HttpResponse | None:
    """First the confirmation page (the stale calls among those selected, and a reason);
    on its POST, close them. ``None`` returns to the change list with the messages."""
    now = timezone.now()
    calls = list(queryset.order_by("started_at"))
    stale = [call for call in calls if selectors.call_is_stale(call=call, now=now)]
    if not stale:
        model_admin.message_user(request, "None of the selected calls is stale: nothing to "
                                          "close.", messages.WARNING)
        return None
    error = ""
    if request.POST.get("post") == "yes":
        try:
            reason = services.stale_reason_clean(reason=request.POST.get("reason", ""))
        except services.CallCloseRefused as exc:
            error = str(exc)  # ask again, on the same page
        else:
            _close(model_admin, request, stale, reason=reason)
            return None
    opts = model_admin.model._meta
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": "Close stale calls",
        "opts": opts,
        "stale": stale,
        "skipped": len(calls) - len(stale),
        "reason": request.POST.get("reason", ""),
        "error": error,
        "max_reason": services.STALE_REASON_MAX,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/calls/call/close_stale.html", context,
                            status=400 if error else 200)


def _close(model_admin: admin.ModelAdmin[Call], request: HttpRequest, stale: list[Call], *,
           reason: str) -> None:
    closed = 0
    for call in stale:
        try:
            services.call_close_stale(call=call, reason=reason, by=request.user)
        except services.CallCloseRefused as exc:  # ended, or its process answered, meanwhile
            model_admin.message_user(request, f"{call.uuid}: {exc}", messages.WARNING)
        else:
            closed += 1
    if closed:
        model_admin.message_user(request, f"Closed {closed} stale call(s).", messages.SUCCESS)
