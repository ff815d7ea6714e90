"""Admin login throttling: django-axes in front of Django's own backend.

Settings ``AUTHENTICATION_BACKENDS`` puts ``LoginThrottleBackend`` first: after
``AXES_FAILURE_LIMIT`` failed logins from one address for one username, that pair is
refused for ``AXES_COOLOFF_MINUTES``, even with the right password.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """axes' standalone backend, for logins that come with an HTTP request.

    axes refuses ``authenticate()`` without a request, to catch login views that forget
    to pass it. A login without one runs in this process (the test client's ``login``,
    a management command, the shell); there is no remote client to throttle, so it goes
    on to the next backend. Every login over HTTP (the admin's ``LoginView``) passes its
    request and is throttled.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:
        if request is not None:
            super().authenticate(request, username=username, password=password, **kwargs)
