"""Stale calls: open in the record, carried by no live web process (or older than any call
may last). Supervisors see them as such and close them with a reason, from the admin
(an action with a confirmation page) or the console (an htmx form)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.auth.models import User as DjangoUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls import processes, selectors, services
from calls.models import Call
from calls.tests.factories import call_create

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:calls_call_changelist"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _dead_call() -> Call:
    """An open call whose web process on this host has exited."""
    call = call_create(caller="")
    pid = _dead_pid()
    call.pid, call.process_start = pid, "gone"  # a start no live process can have
    call.save(update_fields=["pid", "process_start"])
    return call


def _old_call(*, host: str = "another-host") -> Call:
    """An open call on another host, started long before any call may last."""
    started = timezone.now() - timedelta(
        seconds=settings.TOM_CALL_MAX_DURATION_S + selectors.STALE_GRACE_S + 60)
    call = call_create(caller="", started_at=started)
    call.host = host
    call.save(update_fields=["host"])
    return call


def _user(*, username: str, perms: tuple[str, ...] = ()) -> DjangoUser:
    user = get_user_model().objects.create_user(username=username, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="calls", codename__in=perms))
    return user


def test_a_call_whose_process_died_is_stale_and_one_carried_by_a_live_process_is_not() -> None:
    now = timezone.now()
    live = call_create(caller="")  # carried by this (test) process
    assert (live.host, live.pid) == (processes.process_current().host, os.getpid())
    dead = _dead_call()
    young_elsewhere = _dead_call()
    young_elsewhere.host = "another-host"  # its processes cannot be seen from here
    young_elsewhere.save(update_fields=["host"])
    old = _old_call()
    ended = _dead_call()
    services.call_end(call=ended, reason=Call.EndReason.CALLER_HANGUP)
    assert not selectors.call_is_stale(call=live, now=now)
    assert selectors.call_is_stale(call=dead, now=now)
    assert not selectors.call_is_stale(call=young_elsewhere, now=now)
    assert selectors.call_is_stale(call=old, now=now)
    assert not selectors.call_is_stale(call=ended, now=now)
    assert selectors.calls_stale(now=now) == [old, dead]  # oldest first


def test_a_live_call_becomes_stale_once_older_than_the_longest_call_plus_grace() -> None:
    call = call_create(caller="")
    limit = timedelta(seconds=settings.TOM_CALL_MAX_DURATION_S + selectors.STALE_GRACE_S)
    assert not selectors.call_is_stale(call=call, now=call.started_at + limit)
    assert selectors.call_is_stale(call=call, now=call.started_at + limit + timedelta(seconds=1))


def test_closing_a_stale_call_ends_it_with_the_supervisor_and_the_reason() -> None:
    sue = _user(username="sue")
    call = _dead_call()
    closed = services.call_close_stale(call=call, reason="  web-3 was\n rebooted  ", by=sue)
    call.refresh_from_db()
    assert closed.pk == call.pk
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.STALE)
    assert call.status_detail == "closed by sue: web-3 was rebooted"
    assert call.ended_at is not None and call.duration is not None
    assert not call.rewardable


def test_closing_refuses_a_live_call_an_ended_call_and_a_missing_or_long_reason() -> None:
    sue = _user(username="sue")
    live = call_create(caller="")
    with pytest.raises(services.CallCloseRefused, match="not stale"):
        services.call_close_stale(call=live, reason="looks stuck", by=sue)
    live.refresh_from_db()
    assert live.status == Call.Status.ACTIVE
    dead = _dead_call()
    for reason in ("", "   \n "):
        with pytest.raises(services.CallCloseRefused, match="reason is required"):
            services.call_close_stale(call=dead, reason=reason, by=sue)
    with pytest.raises(services.CallCloseRefused, match="too long"):
        services.call_close_stale(call=dead, reason="x" * 201, by=sue)
    assert issubclass(services.CallCloseRefused, ValueError)
    dead.refresh_from_db()
    assert dead.status == Call.Status.ACTIVE
    services.call_close_stale(call=dead, reason="x" * 200, by=sue)
    with pytest.raises(services.CallCloseRefused, match="already ended"):
        services.call_close_stale(call=dead, reason="again", by=sue)


def test_a_number_typed_into_the_reason_is_masked() -> None:
    call = _dead_call()
    services.call_close_stale(call=call, reason="caller +49 30 98765432 says hi",
                              by=_user(username="sue"))
    call.refresh_from_db()
    assert "98765432" not in call.status_detail and "[number]" in call.status_detail


def test_the_change_list_marks_stale_calls(admin_client: Client) -> None:
    dead, live = _dead_call(), call_create(caller="")
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    rows = {uuid: html[html.index(uuid):][:1500] for uuid in (dead.uuid, live.uuid)}
    assert "console-badge-stale" in rows[dead.uuid].split("</tr>")[0]
    assert "console-badge-stale" not in rows[live.uuid].split("</tr>")[0]


def test_the_admin_action_asks_for_a_reason_then_closes_only_stale_calls(
        admin_client: Client) -> None:
    dead, live = _dead_call(), call_create(caller="")
    selected = {"action": "close_stale", "_selected_action": [dead.pk, live.pk]}
    confirm = admin_client.post(reverse(CHANGELIST), selected)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert 'name="reason"' in html and dead.uuid in html and live.uuid not in html
    assert "1 selected call is not stale" in html
    refused = admin_client.post(reverse(CHANGELIST), {**selected, "post": "yes", "reason": " "})
    assert refused.status_code == 400 and "reason is required" in refused.content.decode()
    dead.refresh_from_db()
    assert dead.status == Call.Status.ACTIVE
    done = admin_client.post(reverse(CHANGELIST), {**selected, "post": "yes",
                                                   "reason": "host rebooted"}, follow=True)
    assert "Closed 1 stale call(s)." in done.content.decode()
    dead.refresh_from_db()
    live.refresh_from_db()
    assert (dead.status, dead.end_reason) == (Call.Status.FAILED, Call.EndReason.STALE)
    assert dead.status_detail == "closed by admin: host rebooted"
    assert live.status == Call.Status.ACTIVE


def test_the_admin_action_on_no_stale_call_changes_nothing(admin_client: Client) -> None:
    live = call_create(caller="")
    response = admin_client.post(reverse(CHANGELIST), {
        "action": "close_stale", "_selected_action": [live.pk]}, follow=True)
    assert "None of the selected calls is stale" in response.content.decode()
    live.refresh_from_db()
    assert live.status == Call.Status.ACTIVE


def test_the_console_close_needs_staff_and_the_change_permission() -> None:
    call = _dead_call()
    url = reverse("console:close-stale", args=[call.uuid])
    anonymous = Client().post(url, {"reason": "gone"})
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    viewer = Client()
    viewer.force_login(_user(username="vic", perms=("view_call",)))
    assert viewer.post(url, {"reason": "gone"}).status_code == 403
    call.refresh_from_db()
    assert call.status == Call.Status.ACTIVE


def test_the_console_closes_a_stale_call_with_htmx() -> None:
    client = Client()
    client.force_login(_user(username="sue", perms=("view_call", "change_call")))
    dead, live = _dead_call(), call_create(caller="")
    url = reverse("console:close-stale", args=[dead.uuid])
    assert client.get(url).status_code == 405
    empty = client.post(url, {"reason": "  "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400
    assert empty.content.decode() == "Say why the call is closed: a reason is required."
    done = client.post(url, {"reason": "process killed"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200
    assert f'id="stale-closed-{dead.pk}"' in done.content.decode()
    assert "closed by sue: process killed" in done.content.decode()
    again = client.post(url, {"reason": "twice"})
    assert again.status_code == 409 and "already ended" in again.content.decode()
    not_stale = client.post(reverse("console:close-stale", args=[live.uuid]),
                            {"reason": "looks stuck"})
    assert not_stale.status_code == 409 and "not stale" in not_stale.content.decode()
    assert client.post(reverse("console:close-stale", args=["nope"]),
                       {"reason": "x"}).status_code == 404


def test_the_close_form_posts_the_reason_to_the_console() -> None:
    from django.template.loader import render_to_string

    call = _dead_call()
    html = render_to_string("console/_stale_close_form.html", {"call": call})
    assert f'hx-post="{reverse("console:close-stale", args=[call.uuid])}"' in html
    assert 'name="reason"' in html and "required" in html
