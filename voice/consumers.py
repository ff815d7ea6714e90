"""The FreeSWITCH fork endpoints: ``/ws/fork/`` (mod_audio_fork) and ``/ws/audio-stream/``.

One consumer per call. The handshake is authenticated before it is accepted (a refusal
is HTTP 403); the first text frame is the call's metadata; binary frames are the
caller's audio. The consumer admits (voice.admission: served, told that all lines are
busy, or refused past the hard cap), parses and budgets frames; the call's record
(start, policy, session, DTMF, end and its metrics) is voice.call_lifecycle, and what
the session says reaches the module through voice.call_output. How the module's frames
read and what goes back is its protocol adapter (voice.protocols.adapters), chosen once
per connection at the handshake. Every close ends the Call row with a reason and counts
in a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from functools import partial
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from calls.models import Call
from calls.policy import VariantUnavailable
from tomsite.metrics import error_count
from voice import live, metrics
from voice.admission import BusyLine, Slot, admission_release, admission_reserve
from voice.auth import AuthError, ForkIdentity, fork_authenticate
from voice.call_lifecycle import (
    call_lifecycle_answer,
    call_lifecycle_dtmf,
    call_lifecycle_end,
    call_lifecycle_session,
    call_lifecycle_start,
    call_lifecycle_stop,
)
from voice.call_output import CallOutput
from voice.models import ModelError
from voice.protocols.adapters import Dtmf, ForkProtocol, MarkAnswer, fork_protocol_for
from voice.protocols.metadata import (
    CallStart,
    JsonDepthError,
    JsonItemsError,
    MetadataError,
    split_json_texts,
)
from voice.ratelimit import DtmfLimit, TokenBucket, audio_bucket
from voice.recording import CallRecorder, call_recorder_open, call_recording_publish
from voice.session.base import RealtimeSession
from voice.session.factory import BackendUnavailable, create_session
from voice.tts import TtsError

logger = logging.getLogger(__name__)

CLOSE_NORMAL, CLOSE_INVALID, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_ERROR = 1000, 1007, 1008, 1009, 1011
GRACEFUL_DRAIN_S = 10.0
SUPERVISOR_GOODBYE_S = 6.0  # the goodbye's playout, at most, before the disconnect
# Text frames after the metadata are control messages (marks, DTMF) of a few dozen bytes;
# drachtio glues the texts pending at one write into one frame, never more than a few.
MAX_CONTROL_BYTES = 16_384
MAX_CONTROL_ITEMS = 32
DTMF_PER_S, DTMF_BURST, MAX_DTMF_PER_CALL = 5.0, 20, 200  # beyond: ignored, with a log line


class ForkConsumer(AsyncWebsocketConsumer):
    """mod_audio_fork (drachtio ``?mode=file``, jambonz bidirectional ``?mode=stream``)."""

    route = "fork"  # which protocols the URL may pick from (fork_protocol_for)
    # No channel layer: fork consumers join no group, and a channel on the Redis layer
    # would tie every call to Redis (a Redis restart raised ConnectionError out of the
    # layer's receive and killed the call). channels' get_channel_layer(None) is None.
    channel_layer_alias = None

    async def connect(self) -> None:
        self.protocol: ForkProtocol = self.protocol_choose()
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.call: Call | None = None
        self.start: CallStart | None = None
        self.session: RealtimeSession | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        self.preparing = False  # loading the session's models: frames queue meanwhile
        self.pending: deque[tuple[bytes | None, str | None, float]] = deque()
        # The module's adapter and the turn ledger, fed from the session's events.
        self.output: CallOutput | None = None
        self.recorder: CallRecorder | None = None  # voice.recording, if the call is recorded
        self.end_reason: str | None = None
        self.live: live.LiveCall | None = None  # what the console shows (voice.live)
        self.slot: Slot | None = None  # this connection's place (voice.admission)
        self.busy_line: BusyLine | None = None  # over capacity: the busy message instead
        self.last_frame_at = loop.time()
        self.bucket = TokenBucket(rate=settings.TOM_RATE_LIMIT_MSGS,
                                  burst=settings.TOM_RATE_LIMIT_BURST, now=loop.time())
        self.audio_bucket: TokenBucket | None = None  # sized once the metadata says the rate
        self.dtmf = DtmfLimit(per_s=DTMF_PER_S, burst=DTMF_BURST, total=MAX_DTMF_PER_CALL,
                              now=loop.time())
        # The place is taken before the first await (admission_reserve says why).
        if not self._reserve():
            await self._refuse("overloaded")
            return
        try:
            self.identity: ForkIdentity = await self.authenticate()
        except AuthError as exc:
            self._release()
            await self._refuse(exc.reason)
            return
        except BaseException:
            self._release()
            raise
        offered = self.scope.get("subprotocols", [])
        # libwebsockets fails the handshake if a different subprotocol is echoed
        # (SOURCES.md A2): echo ours when offered, else none.
        chosen = settings.TOM_FORK_SUBPROTOCOL if settings.TOM_FORK_SUBPROTOCOL in offered else None
        await self.accept(subprotocol=chosen)
        self._spawn(self._watchdog(), "watchdog")

    def protocol_choose(self) -> ForkProtocol:
        """The connection's protocol adapter, from its route and URL (the handshake's first
        step). The console's test call has one of its own (voice.browser_call)."""
        return fork_protocol_for(route_flavour=self.route,
                                 query=self.scope.get("query_string", b""))

    async def authenticate(self) -> ForkIdentity:
        """Who opened the socket; ``AuthError`` refuses the handshake (HTTP 403). The
        console's test call authenticates by the supervisor's session instead."""
        return await fork_authenticate(query_string=self.scope.get("query_string", b""),
                                       headers=self.scope.get("headers", []))

    def _reserve(self) -> bool:
        self.slot = admission_reserve()  # None over the hard cap; busy over capacity
        return self.slot is not None

    def _release(self) -> bool:
        return self.slot is not None and admission_release(slot=self.slot)

    async def _refuse(self, reason: str) -> None:
        metrics.HANDSHAKES_REFUSED.labels(reason=reason).inc()
        logger.warning("fork.refused", extra={"reason": reason, "protocol": self.protocol.name})
        await self.close()  # before accept: daphne answers HTTP 403

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"fork-{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error_count(component="fork")
            logger.error("fork.task_failed", exc_info=task.exception(),
                         extra={"task": task.get_name(), "call_id": getattr(self.call, "pk", None)})
            if not self.closing:
                self._spawn(self._fail(Call.EndReason.SERVER_ERROR, CLOSE_ERROR,
                                       "internal error"), "fail")

    # --- inbound ---------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        now = self.loop.time()
        if not self.bucket.take(now):
            await self._fail(Call.EndReason.RATE_LIMITED, CLOSE_POLICY, "message rate exceeded")
            return
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        # tomsite.serve has autobahn refuse bigger frames before they are read; plain
        # ``daphne`` reads up to 1 MiB (its --websocket-max-frame-size can lower that).
        limit = settings.TOM_MAX_FRAME_BYTES
        if self.start is not None and text_data is not None:
            limit = min(limit, MAX_CONTROL_BYTES)
        if size > limit:
            await self._fail(Call.EndReason.FRAME_TOO_LARGE, CLOSE_TOO_BIG,
                             f"frame of {size} bytes exceeds {limit}")
            return
        if self.audio_bucket is not None and not self.audio_bucket.take(now, size):
            await self._fail(Call.EndReason.RATE_LIMITED, CLOSE_POLICY,
                             f"audio faster than {settings.TOM_RATE_LIMIT_AUDIO_FACTOR:g}x "
                             "real time")
            return
        self.last_frame_at = now
        if self.start is None:
            await self._receive_metadata(text_data)
        elif self.preparing:
            self.pending.append((bytes_data, text_data, now))
        else:
            await self._receive_data(bytes_data, text_data, now)

    async def _receive_data(self, bytes_data: bytes | None, text_data: str | None,
                            now: float) -> None:
        if bytes_data is not None:
            await self._receive_audio(bytes_data, now)
        elif text_data is not None:
            await self._receive_control(text_data)

    async def _receive_metadata(self, text: str | None) -> None:
        if text is None:
            await self._fail(Call.EndReason.PROTOCOL_ERROR, CLOSE_INVALID,
                             "the first frame must be the JSON metadata, not audio")
            return
        try:
            values = split_json_texts(text, max_items=1 + MAX_CONTROL_ITEMS)
            if not values:
                raise MetadataError("empty metadata")
            start = self.protocol.parse_start(values[0],
                                              default_rate=settings.TOM_DEFAULT_SAMPLE_RATE,
                                              token_uuid=self.identity.call_uuid)
        except JsonItemsError as exc:
            await self._fail(Call.EndReason.RATE_LIMITED, CLOSE_POLICY, str(exc))
            return
        except (ValueError, MetadataError) as exc:
            reason = str(exc) if isinstance(exc, MetadataError) else "metadata is not valid JSON"
            await self._fail(Call.EndReason.PROTOCOL_ERROR, CLOSE_INVALID, reason)
            return
        self.start = start
        # Bytes, not only messages: 120 messages of 64 KiB a second are ~500x real time.
        self.audio_bucket = audio_bucket(
            sample_rate=start.sample_rate, channels=start.channels, encoding=start.encoding,
            factor=settings.TOM_RATE_LIMIT_AUDIO_FACTOR,
            burst_s=settings.TOM_RATE_LIMIT_AUDIO_BURST_S, now=self.loop.time())
        self.call = await call_lifecycle_start(start=start, protocol=self.protocol)
        if self.call.is_ended:
            await self._fail(Call.EndReason.PROTOCOL_ERROR, CLOSE_INVALID, "call already ended")
            return
        if self.call.caller is not None and self.call.caller.blocked:
            await self._end(Call.EndReason.BLOCKED, failed=False, code=CLOSE_NORMAL,
                            message=self.protocol.disconnect("blocked"))
            return
        if self.slot is not None and self.slot.busy:  # over capacity: told so, not served
            self.end_reason = Call.EndReason.BUSY  # also if the caller hangs up meanwhile
            self.busy_line = BusyLine(call=self.call, start=start, protocol=self.protocol,
                                      send=self.send, spawn=self._spawn)
            self._spawn(self._busy(self.busy_line), "busy")
            return
        # The models load in a task of their own, so receive() keeps running meanwhile:
        # each frame is checked against both budgets when it arrives and waits in
        # self.pending (bounded by those budgets), instead of piling up unbounded in
        # daphne's input queue while this handler awaits the load.
        self.preparing = True
        self._spawn(self._start_session(start, values[1:]), "prepare")

    async def _start_session(self, start: CallStart, extras: list[Any]) -> None:
        if self.call is None:  # set by _receive_metadata before this task starts
            return
        try:
            self.session = session = await call_lifecycle_session(call=self.call, start=start,
                                                                  create=create_session)
        except (BackendUnavailable, ModelError, TtsError, VariantUnavailable) as exc:
            self.preparing = False
            await self._fail(Call.EndReason.SERVER_ERROR, CLOSE_ERROR, str(exc))
            return
        except Exception:
            # Anything else still ends the call now: the slot is freed and the caller
            # hears the close, instead of a call held open with the idle watchdog off.
            self.preparing = False
            error_count(component="fork")
            logger.exception("fork.prepare_failed", extra={"call_id": self.call.pk})
            await self._fail(Call.EndReason.SERVER_ERROR, CLOSE_ERROR, "internal error")
            return
        # Frames queued while models loaded are not idleness: restart the idle clock.
        self.last_frame_at = self.loop.time()
        await call_lifecycle_answer(call=self.call)
        self.recorder = await call_recorder_open(call=self.call, rate=start.sample_rate,
                                                 now=self.loop.time())
        self.live = live.LiveCall(
            uuid=self.call.uuid, call_id=self.call.pk,
            started_at=self.call.started_at.timestamp(), language=self.call.language,
            variant=self.call.policy_variant, synthetic=self.call.synthetic,
            recording=self.recorder is not None)
        if self.recorder is not None:  # a full disk ends the recording: the board says so
            self.recorder.on_failed = partial(live.hub.call_changed, self.live, recording=False)
        self.output = CallOutput(call=self.call, session=session, protocol=self.protocol,
                                 send=self.send, spawn=self._spawn, hang_up=self._hang_up,
                                 now=self.loop.time, live=self.live, recorder=self.recorder)
        self.output.start()
        # On the console from its answer on (voice.live).
        live.hub.call_started(live=self.live, controls=self)
        logger.info("fork.call_started", extra={"call_id": self.call.pk, "rate": start.sample_rate,
                                                "protocol": self.protocol.name})
        for extra in extras:  # drachtio glued later texts onto the metadata frame
            await self._handle_control(extra)
        # In arrival order; frames that come in while these are handled join the end.
        while self.pending and not self.closing:
            bytes_data, text_data, at = self.pending.popleft()
            await self._receive_data(bytes_data, text_data, at)
        self.preparing = False

    async def _receive_audio(self, data: bytes, now: float) -> None:
        if self.session is None or self.start is None:
            return
        if not data:
            # graceful-shutdown: the module sends empty frames and never closes (SOURCES.md A6).
            if self.end_reason is None:
                self.end_reason = Call.EndReason.GRACEFUL_SHUTDOWN
                self._spawn(self._graceful_shutdown(), "shutdown")
            return
        started = time.perf_counter()
        # Decoded once; the session makes its own frames at the rate its models read.
        pcm = self.protocol.decode(data, start=self.start)
        if self.recorder is not None:  # while the call ends too: the goodbye is heard over it
            self.recorder.caller(pcm, at=now)
        if self.end_reason is not None:
            return
        await self.session.push_audio(pcm, at=now)
        metrics.FRAMES_RECEIVED.inc()
        metrics.FRAME_PROCESSING.observe(time.perf_counter() - started)

    async def _receive_control(self, text: str) -> None:
        try:
            values = split_json_texts(text, max_items=MAX_CONTROL_ITEMS)
        except JsonItemsError as exc:  # thousands of DTMF messages are a flood, not input
            await self._fail(Call.EndReason.RATE_LIMITED, CLOSE_POLICY, str(exc))
            return
        except JsonDepthError as exc:
            await self._fail(Call.EndReason.PROTOCOL_ERROR, CLOSE_INVALID, str(exc))
            return
        except ValueError:
            logger.info("fork.text_ignored", extra={"call_id": self.call.pk if self.call else None})
            return
        for value in values:
            await self._handle_control(value)

    async def _handle_control(self, value: Any) -> None:
        control = self.protocol.control(value)
        if isinstance(control, Dtmf) and self.call is not None:
            self.call = await call_lifecycle_dtmf(call=self.call, digits=control.digits,
                                                  limit=self.dtmf, now=self.loop.time())
        elif isinstance(control, MarkAnswer) and (heard := self.output or self.busy_line):
            heard.mark_answered(control)

    # --- ending ----------------------------------------------------------------------
    async def _busy(self, line: BusyLine) -> None:
        await line.play()  # returns once the transport reports the message heard out
        await self._end(Call.EndReason.BUSY, failed=False, code=CLOSE_NORMAL,
                        message=self.protocol.disconnect("busy"))

    async def _graceful_shutdown(self) -> None:
        if self.output is not None:  # let the last answer reach the caller first
            await self.output.finish_speaking(limit_s=GRACEFUL_DRAIN_S)
        await self._end(Call.EndReason.GRACEFUL_SHUTDOWN, failed=False, code=CLOSE_NORMAL)

    async def _hang_up(self, reason: str) -> None:
        """The session ends the call (its ``EndCall``)."""
        await self._end(Call.EndReason.AGENT_HANGUP, failed=False, code=CLOSE_NORMAL,
                        message=self.protocol.disconnect(reason))

    async def supervisor_hang_up(self, *, by: str) -> None:
        """A supervisor ends the call from the console (voice.live): TOM says goodbye,
        then the module gets ``disconnect``. Returns at once; the call's task does it."""
        if self.closing or self.end_reason is not None:
            return
        self.end_reason = Call.EndReason.SUPERVISOR_HANGUP  # the caller is no longer heard
        self._spawn(self._supervisor_hang_up(), "supervisor-hangup")

    async def _supervisor_hang_up(self) -> None:
        if self.output is not None and self.call is not None:
            await self.output.say_goodbye(language=self.call.language or settings.TOM_LANGUAGE,
                                          limit_s=SUPERVISOR_GOODBYE_S)
        await self._end(Call.EndReason.SUPERVISOR_HANGUP, failed=False, code=CLOSE_NORMAL,
                        message=self.protocol.disconnect("supervisor"))

    def supervisor_stop_recording(self, *, by: str) -> None:
        """From now on nothing the caller says is recorded (voice.recording)."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.stop()

    async def _watchdog(self) -> None:
        started = self.loop.time()
        while not self.closing:
            await asyncio.sleep(0.5)
            now = self.loop.time()
            if not self.preparing and now - self.last_frame_at > settings.TOM_WS_IDLE_TIMEOUT_S:
                await self._end(Call.EndReason.IDLE_TIMEOUT, failed=True, code=CLOSE_NORMAL,
                                message=self.protocol.disconnect("idle"))
            elif now - started > settings.TOM_CALL_MAX_DURATION_S:
                await self._end(Call.EndReason.MAX_DURATION, failed=False, code=CLOSE_NORMAL,
                                message=self.protocol.disconnect("max_duration"))

    async def _fail(self, reason: str, code: int, detail: str) -> None:
        await self._end(reason, failed=True, code=code, detail=detail,
                        message=self.protocol.error(detail))

    async def _end(self, reason: str, *, failed: bool, code: int, detail: str = "",
                   message: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        self.end_reason = reason
        if message is not None:
            with contextlib.suppress(Exception):  # the peer may already be gone
                await self.send(text_data=message)
        await self._finish(reason=reason, failed=failed, detail=detail)
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.start is None and not (self.slot is not None and self.slot.held):
            return  # refused at the handshake
        reason: str = self.end_reason or Call.EndReason.CALLER_HANGUP
        failed, detail = False, ""
        if self.end_reason is None and code == CLOSE_TOO_BIG:
            # autobahn refused a frame over TOM_MAX_FRAME_BYTES (tomsite.serve) unread.
            reason, failed, detail = Call.EndReason.FRAME_TOO_LARGE, True, "frame too large"
        self.closing = True
        await self._finish(reason=reason, failed=failed, detail=detail)

    async def _finish(self, *, reason: str, failed: bool, detail: str) -> None:
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        session, self.session = self.session, None
        if self.recorder is not None:  # written up to now: what plays after is unheard
            self.recorder.finish(at=self.loop.time())
        if self.live is not None:
            live.hub.call_ended(self.live, reason=reason)
        await call_lifecycle_stop(session=session, output=self.output)
        await call_lifecycle_end(call=self.call, reason=reason, failed=failed, detail=detail,
                                 counted=self._release())
        if self.recorder is not None and self.call is not None:  # last: an upload may be slow
            await call_recording_publish(call=self.call)


class AudioStreamConsumer(ForkConsumer):
    """amigniter mod_audio_stream: L16 (or G.711) in, ``streamAudio`` files out."""

    route = "audio_stream"

