"""The console's pages and streams without a browser: who may see them, what the board
and the call page draw from the record, and the board's stream following the live hub
(voice.live) on the configured channel layer. The browser tests are
calls/tests/test_console_browser.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from calls.models import Call, CallTurn
from voice import live

pytestmark = pytest.mark.django_db


def _staff(*perms: str) -> User:
    user = User.objects.create_user("sue", password="pw", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app,
                                                         codename=codename))
    return user


def _open_call(uuid: str = "c0ffee-1", **fields: Any) -> Call:
    return Call.objects.create(uuid=uuid, status=Call.Status.ACTIVE, language="en",
                               policy_variant="calm", host="", **fields)


def test_anonymous_users_are_sent_to_the_login_page(client: Client) -> None:
    call = _open_call()
    for url in (reverse("console:board"), reverse("console:call", args=[call.uuid])):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_view_permission_get_403(client: Client) -> None:
    client.force_login(_staff())
    assert client.get(reverse("console:board")).status_code == 403
    assert client.get(reverse("console:board-events")).status_code == 403


def test_hanging_up_needs_the_change_permission(client: Client) -> None:
    call = _open_call()
    client.force_login(_staff("calls.view_call"))
    assert client.post(reverse("console:hangup", args=[call.uuid])).status_code == 403


def test_the_board_draws_open_calls_from_the_record(client: Client) -> None:
    call = _open_call()
    CallTurn.objects.create(call=call, index=0, caller_text="Opening hours?",
                            agent_text="We open at nine.", e2e_ms=1400)
    Call.objects.create(uuid="done-1", status=Call.Status.COMPLETED)
    client.force_login(_staff("calls.view_call"))
    page = client.get(reverse("console:board")).content.decode()
    assert 'data-uuid="c0ffee-1"' in page and "done-1" not in page
    assert "Opening hours?" in page and "We open at nine." in page and "1.40 s" in page
    assert "TOM supervisor console" in page  # the admin's header: inside its look
    assert 'sse-connect="/console/events"' in page


def test_the_call_page_shows_turns_tools_and_the_waterfall(client: Client) -> None:
    call = _open_call(status_detail="")
    call.status = Call.Status.COMPLETED
    call.ended_at = timezone.now()
    call.save()
    CallTurn.objects.create(
        call=call, index=0, caller_text="Brake pads for a Golf?", agent_text="Yes, 49 euros.",
        e2e_ms=1500, waterfall={"stt_done": 300, "llm_first_text": 900,
                                "first_audio_sent": 1500},
        tool_calls=[{"name": "parts_search", "arguments": {"query": "brake pads"},
                     "result": {"count": 2}, "ms": 40}])
    client.force_login(_staff("calls.view_call"))
    page = client.get(reverse("console:call", args=[call.uuid])).content.decode()
    assert "Brake pads for a Golf?" in page and "parts_search" in page
    assert "<svg" in page and "sse-connect" not in page  # ended: nothing live
    assert "<audio" not in page  # no recording


async def _chunks(response: Any) -> Any:
    async for chunk in response.streaming_content:
        yield chunk.decode() if isinstance(chunk, bytes) else chunk


@pytest.mark.django_db(transaction=True)
async def test_the_board_stream_follows_calls_as_they_start_and_end() -> None:
    user = await User.objects.acreate(username="ann", is_staff=True, is_superuser=True)
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(reverse("console:board-events"))
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    stream = _chunks(response)
    hub = live.LiveHub()

    async def read_until(text: str) -> str:
        seen = ""
        while text not in seen:
            seen = await asyncio.wait_for(anext(stream), 10)
        return seen

    await read_until("retry:")
    await read_until("No call in progress")  # the first redraw after the sync
    call = hub.call_started(live=live.LiveCall(
        uuid="live-board-1", call_id=1, started_at=timezone.now().timestamp(), language="de",
        variant="calm"), controls=_NoControls())
    drawn = await read_until("live-board-1")
    assert drawn.startswith("event: calls") and "listening" in drawn
    hub.call_line(call, role="caller", text="Haben Sie Bremsscheiben?", turn=1)
    assert "Haben Sie Bremsscheiben?" in await read_until("Bremsscheiben")
    hub.call_ended(call, reason="caller_hangup")
    assert "live-board-1" not in await read_until("No call in progress")
    await stream.aclose()


class _NoControls:
    async def supervisor_hang_up(self, *, by: str) -> None:
        raise AssertionError("not asked")

    def supervisor_stop_recording(self, *, by: str) -> None:
        raise AssertionError("not asked")


def test_hang_up_asks_to_confirm_then_reaches_the_process(client: Client) -> None:
    call = _open_call(started_at=timezone.now() - timedelta(seconds=5))
    client.force_login(_staff("calls.view_call", "calls.change_call"))
    confirm = client.get(reverse("console:hangup", args=[call.uuid]))
    assert confirm.status_code == 200 and b"Yes, hang up" in confirm.content
    done = client.post(reverse("console:hangup", args=[call.uuid]))
    assert done.status_code == 200 and b"goodbye" in done.content
    call.status = Call.Status.COMPLETED
    call.save()
    assert client.post(reverse("console:hangup", args=[call.uuid])).status_code == 409
