"""What supervisors see of the calls in progress, and what they can do to them.

Each web process keeps the state of the calls it carries (``LiveCall``: stage, last
lines, latency so far) and publishes every change to the channel layer's
``tom-console`` group, where the console's event streams (calls.console) listen: Redis
in production, the in-memory layer on the embedded default (one process, so it sees
all). The process also listens on ``tom-control`` for what a supervisor asks of a call
it carries (hang up, stop recording) and for a stream's ``sync`` (publish every call's
state now, so a board opened mid-call is complete at once).

A call never waits for the console and never fails because of it: changes go into a
bounded queue that one task sends, and a dead layer (Redis restarting) costs events,
counted in ``tom_live_events_dropped_total`` and logged, not calls. The hub's tasks run
while the process carries a call and are cancelled after the last one ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer

from calls.console.channel import CONTROL_GROUP, GROUP, console_control_send
from tomsite.metrics import error_count
from voice import metrics

logger = logging.getLogger(__name__)

live_control_send = console_control_send  # for the process's own use and the tests
QUEUE_LIMIT = 1000
# Group membership expires on the layers (a day on channels-redis): join again well before.
REJOIN_S = 3600.0
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
LINE_CHARS = 300  # the board shows the end of a line; the call page gets the whole turn


class Stage:
    LISTENING, THINKING, TOOL, SPEAKING = "listening", "thinking", "tool", "speaking"


# The pipeline's marks (voice.session.events.AgentSpeech.mark) as the stage they begin.
_MARK_STAGES = {
    "stt_done": Stage.THINKING, "understood": Stage.THINKING, "routed": Stage.TOOL,
    "tools_done": Stage.THINKING, "llm_request": Stage.THINKING,
    "llm_tool_call": Stage.TOOL, "llm_first_text": Stage.THINKING,
}


def mark_stage(mark: str) -> str | None:
    """The stage a pipeline mark begins, or None for marks that change nothing."""
    return _MARK_STAGES.get(mark)


class CallControls(Protocol):
    """What a supervisor can do to a call in progress (the fork consumer does it)."""

    async def supervisor_hang_up(self, *, by: str) -> None: ...

    def supervisor_stop_recording(self, *, by: str) -> None: ...


@dataclass
class LiveCall:
    """One call in progress as the board shows it (no phone number ever)."""

    uuid: str
    call_id: int
    started_at: float  # epoch seconds
    language: str = ""
    variant: str = ""
    synthetic: bool = False
    stage: str = Stage.LISTENING
    turn: int = 0
    caller_line: str = ""
    agent_line: str = ""
    latencies_ms: list[int] = field(default_factory=list)  # each reply's end-to-end
    recording: bool = False

    def state(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Entry:
    live: LiveCall
    controls: CallControls


class LiveHub:
    """This process's live calls, their publisher and the control listener."""

    def __init__(self) -> None:
        self._calls: dict[str, _Entry] = {}
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the calls -----------------------------------------------------------------
    def call_started(self, *, live: LiveCall, controls: CallControls) -> LiveCall:
        self._ensure_running()
        self._calls[live.uuid] = _Entry(live=live, controls=controls)
        self._publish("call.state", live.state())
        return live

    def call_changed(self, live: LiveCall, **changes: Any) -> None:
        """Apply ``changes`` to ``live`` and publish its state if anything changed."""
        changed = False
        for name, value in changes.items():
            if getattr(live, name) != value:
                setattr(live, name, value)
                changed = True
        if changed and live.uuid in self._calls:
            self._publish("call.state", live.state())

    def call_line(self, live: LiveCall, *, role: str, text: str, turn: int) -> None:
        """A final transcript line: the call page appends it, the board shows its end."""
        if live.uuid not in self._calls:
            return
        self._publish("call.line", {"uuid": live.uuid, "role": role, "text": text,
                                    "turn": turn, "at": time.time()})
        tail = text if len(text) <= LINE_CHARS else "…" + text[-LINE_CHARS:]
        if role == "caller":
            self.call_changed(live, caller_line=tail, turn=max(live.turn, turn))
        else:
            self.call_changed(live, agent_line=tail)

    def call_turn_recorded(self, live: LiveCall, *, turn: int) -> None:
        """A turn's record is in the database: the call page redraws its turns."""
        if live.uuid in self._calls:
            self._publish("call.turn", {"uuid": live.uuid, "turn": turn})

    def call_ended(self, live: LiveCall, *, reason: str) -> None:
        if self._calls.pop(live.uuid, None) is None:
            return
        self._publish("call.ended", {"uuid": live.uuid, "call_id": live.call_id,
                                     "reason": reason})

    def live_calls(self) -> list[LiveCall]:
        return [entry.live for entry in self._calls.values()]

    # --- the tasks -----------------------------------------------------------------
    def _publish(self, kind: str, payload: dict[str, Any]) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait({"type": "console.event", "kind": kind, **payload})
        except asyncio.QueueFull:
            metrics.LIVE_EVENTS_DROPPED.labels(reason="queue_full").inc()

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests run one per test): start afresh
            self._calls.clear()
            self._queue, self._task, self._loop = asyncio.Queue(QUEUE_LIMIT), None, loop
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="live-hub")

    async def _run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="live-control")
        try:
            await self._send()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        # A call that started while this task was ending must not go unpublished.
        self._task = None
        if self._calls:
            self._ensure_running()

    async def _send(self) -> None:
        """Send queued events until no call is left and the queue is empty."""
        queue, layer = self._queue, get_channel_layer()
        if queue is None:
            return
        while self._calls or not queue.empty():
            try:
                event = await asyncio.wait_for(queue.get(), 1.0)
            except TimeoutError:
                continue
            if layer is None:
                continue
            try:
                await layer.group_send(GROUP, event)
            except Exception as exc:
                # Redis restarting: this event is lost, the call goes on.
                metrics.LIVE_EVENTS_DROPPED.labels(reason="layer").inc()
                logger.warning("live.publish_failed", extra={"error": type(exc).__name__})

    async def _listen(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        attempt = 0
        while True:
            try:
                channel = own_channel("tom-control")
                await layer.group_add(CONTROL_GROUP, channel)
                joined = time.monotonic()
                attempt = 0
                while time.monotonic() - joined < REJOIN_S:
                    try:
                        message = await asyncio.wait_for(layer.receive(channel), 30.0)
                    except TimeoutError:
                        continue
                    await self._control(message)
                await layer.group_discard(CONTROL_GROUP, channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error_count(component="live")
                logger.warning("live.control_failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1

    async def _control(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "sync":
            for each in list(self._calls.values()):
                self._publish("call.state", each.live.state())
            return
        entry = self._calls.get(str(message.get("uuid", "")))
        if entry is None:
            return  # another process carries that call
        by = str(message.get("by", ""))[:150]
        logger.info("live.supervisor_action", extra={"call_id": entry.live.call_id,
                                                      "action": kind, "by": by})
        if kind == "hangup":
            await entry.controls.supervisor_hang_up(by=by)
        elif kind == "recording_stop":
            entry.controls.supervisor_stop_recording(by=by)
            self.call_changed(entry.live, recording=False)


hub = LiveHub()


def own_channel(prefix: str) -> str:
    """A channel name of its own for one reader, not a process-local ``!`` channel:
    channels-redis reads all of those through one lock per layer, so a blocking read
    here would hold up every other (the health probe's), and a lock taken on one event
    loop breaks the next loop's readers (tests run one loop each)."""
    return f"{prefix}.{uuid.uuid4().hex}"
