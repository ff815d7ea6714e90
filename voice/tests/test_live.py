"""The live hub (voice.live): calls in progress published to the console's group, what a
supervisor asks dispatched to the process carrying the call, and a dead layer costing
events, never calls. On the channel layer the settings configure (Redis or in memory)."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import channel_layers, get_channel_layer

from voice import live, metrics


class Controls:
    def __init__(self) -> None:
        self.hung_up: list[str] = []
        self.stopped: list[str] = []

    async def supervisor_hang_up(self, *, by: str) -> None:
        self.hung_up.append(by)

    def supervisor_stop_recording(self, *, by: str) -> None:
        self.stopped.append(by)


async def _listener() -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = live.own_channel("test-console")
    await layer.group_add(live.GROUP, channel)
    return layer, channel


async def _next(layer: Any, channel: str, kind: str) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(layer.receive(channel), 5)
        if message["kind"] == kind:
            return message  # type: ignore[no-any-return]


def _call(uuid: str = "live-1") -> live.LiveCall:
    return live.LiveCall(uuid=uuid, call_id=7, started_at=1.0, language="en", variant="a")


async def test_a_call_is_published_from_start_to_end() -> None:
    layer, channel = await _listener()
    hub = live.LiveHub()
    call = hub.call_started(live=_call(), controls=Controls())
    task = hub._task
    assert task is not None and not task.done()
    started = await _next(layer, channel, "call.state")
    assert started["uuid"] == "live-1" and started["stage"] == "listening"

    hub.call_line(call, role="caller", text="Do you have brake pads?", turn=1)
    line = await _next(layer, channel, "call.line")
    assert (line["role"], line["text"], line["turn"]) == ("caller", "Do you have brake pads?", 1)
    state = await _next(layer, channel, "call.state")
    assert state["caller_line"] == "Do you have brake pads?" and state["turn"] == 1

    hub.call_changed(call, stage=live.Stage.SPEAKING, latencies_ms=[1200])
    state = await _next(layer, channel, "call.state")
    assert state["stage"] == "speaking" and state["latencies_ms"] == [1200]

    hub.call_ended(call, reason="caller_hangup")
    ended = await _next(layer, channel, "call.ended")
    assert ended["reason"] == "caller_hangup"
    # The hub's task ends once the last call has left and its events are sent.
    await asyncio.wait_for(task, 5)
    assert hub._task is None
    assert hub.live_calls() == []


async def test_an_unchanged_state_is_not_published_again() -> None:
    layer, channel = await _listener()
    hub = live.LiveHub()
    call = hub.call_started(live=_call(), controls=Controls())
    await _next(layer, channel, "call.state")
    hub.call_changed(call, stage=live.Stage.LISTENING)  # no change
    hub.call_changed(call, stage=live.Stage.THINKING)
    state = await _next(layer, channel, "call.state")
    assert state["stage"] == "thinking"
    hub.call_ended(call, reason="caller_hangup")


async def test_supervisor_actions_reach_only_the_call_they_name() -> None:
    layer, channel = await _listener()
    hub = live.LiveHub()
    mine, other = Controls(), Controls()
    call = hub.call_started(live=_call("live-mine"), controls=mine)
    hub.call_started(live=_call("live-other"), controls=other)
    await asyncio.sleep(0.2)  # the control listener joins its group
    await live.live_control_send(kind="hangup", uuid="live-mine", by="sue")
    await live.live_control_send(kind="recording_stop", uuid="live-mine", by="sue")
    for _ in range(50):
        if mine.hung_up and mine.stopped:
            break
        await asyncio.sleep(0.05)
    assert mine.hung_up == ["sue"] and mine.stopped == ["sue"]
    assert other.hung_up == [] and other.stopped == []
    # A stream's sync: every call's state again, so a board opened mid-call is complete.
    await live.live_control_send(kind="sync")
    seen = set()
    while seen != {"live-mine", "live-other"}:
        seen.add((await _next(layer, channel, "call.state"))["uuid"])
    assert call.recording is False
    for uuid in ("live-mine", "live-other"):
        hub.call_ended(_call(uuid), reason="caller_hangup")


async def test_a_dead_layer_costs_events_not_the_call(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0",
                              "socket_connect_timeout": 0.2}]}}}
    channel_layers.backends.clear()
    try:
        dropped = metrics.LIVE_EVENTS_DROPPED.labels(reason="layer")
        before = dropped._value.get()
        hub = live.LiveHub()
        call = hub.call_started(live=_call(), controls=Controls())
        hub.call_changed(call, stage=live.Stage.THINKING)
        for _ in range(100):
            if dropped._value.get() >= before + 2:
                break
            await asyncio.sleep(0.05)
        assert dropped._value.get() >= before + 2
        # The call's side never raised, and the hub still ends cleanly.
        hub.call_ended(call, reason="caller_hangup")
        assert hub._task is not None
        hub._task.cancel()
    finally:
        channel_layers.backends.clear()


def test_marks_map_to_stages() -> None:
    assert live.mark_stage("routed") == live.Stage.TOOL
    assert live.mark_stage("llm_tool_call") == live.Stage.TOOL
    assert live.mark_stage("tools_done") == live.Stage.THINKING
    assert live.mark_stage("first_clause") is None
