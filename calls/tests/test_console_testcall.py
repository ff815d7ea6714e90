"""The "Call TOM" page without a browser: who may open it and which variants it offers.
The call itself (the page's script, the WebSocket, a real Chromium with a fake
microphone) is voice/tests/test_browser_call.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from calls.models import PolicyVariant

pytestmark = pytest.mark.django_db


def _staff(*perms: str) -> User:
    user = User.objects.create_user("sue", password="pw", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app,
                                                         codename=codename))
    return user


def test_anonymous_users_are_sent_to_the_login_page(client: Client) -> None:
    response = client.get(reverse("console:test-call"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_view_permission_get_403(client: Client) -> None:
    client.force_login(_staff())
    assert client.get(reverse("console:test-call")).status_code == 403


def test_the_page_offers_the_live_variants_and_the_call_controls(client: Client) -> None:
    PolicyVariant.objects.create(name="brisk")
    PolicyVariant.objects.create(name="retired", enabled=False)
    PolicyVariant.objects.create(name="banned", blacklisted=True)
    client.force_login(_staff("calls.view_call"))
    response = client.get(reverse("console:test-call"))
    assert response.status_code == 200
    page = response.content.decode()
    assert reverse("console:test-call") == "/console/call-tom/"
    assert '<option value="brisk">brisk</option>' in page
    assert "retired" not in page and "banned" not in page
    assert 'id="call-tom"' in page and 'id="hang-up"' in page and 'id="transcript"' in page
    assert 'data-socket-path="/ws/console/call/"' in page
    assert "console/testcall.js" in page and "console/pcm-worklet.js" in page
    assert "TOM supervisor console" in page  # inside the admin's look
    assert client.post(reverse("console:test-call")).status_code == 405


def test_the_page_offers_the_languages_with_tom_language_chosen(
        client: Client, settings: Any) -> None:
    settings.TOM_LANGUAGE = "de"
    client.force_login(_staff("calls.view_call"))
    page = client.get(reverse("console:test-call")).content.decode()
    assert '<option value="de" selected>German</option>' in page
    assert '<option value="en">English</option>' in page
    settings.TOM_LANGUAGE = "fr"  # a deployment's own language is offered too
    page = client.get(reverse("console:test-call")).content.decode()
    assert '<option value="fr" selected>fr</option>' in page
