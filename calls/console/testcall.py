"""The console's test call page: a supervisor calls TOM from the browser.

The page only draws the controls; the call itself is a WebSocket to ``/ws/console/call/``
(voice.browser_call) that the page's script (static ``console/testcall.js``) opens with
the supervisor's session, speaking the fork protocol with the microphone's audio.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from calls import policy

# Not a Django URL: the WebSocket routes are channels' (voice.routing).
CALL_SOCKET_PATH = "/ws/console/call/"
# The languages TOM answers in (its fillers, warm-up and prompts exist for these); the
# call's metadata carries the choice, as FreeSWITCH's would.
CALL_LANGUAGES = (("en", "English"), ("de", "German"))


def call_languages() -> list[tuple[str, str]]:
    """The picker's languages, with ``TOM_LANGUAGE`` among them even if it is another."""
    languages = list(CALL_LANGUAGES)
    if settings.TOM_LANGUAGE not in dict(languages):
        languages.insert(0, (settings.TOM_LANGUAGE, settings.TOM_LANGUAGE))
    return languages


@require_GET
@staff_member_required
@permission_required("calls.view_call", raise_exception=True)
def test_call(request: HttpRequest) -> HttpResponse:
    """The "Call TOM" page: a variant and a language to try, call and hang-up buttons,
    the transcript."""
    return render(request, "console/test_call.html", {
        **admin.site.each_context(request),  # the admin's header, theme and sidebar
        "title": "Call TOM", "variants": policy.live_variants(),
        "socket_path": CALL_SOCKET_PATH,
        "languages": call_languages(), "language": settings.TOM_LANGUAGE,
    })
