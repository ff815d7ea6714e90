"""What a session hands the transport: small frames, plus the handle of each agent utterance.

Data frames (agent audio, transcripts) are ordered and dropped on barge-in; system frames
(interruption, the barge-in decision, end of call) travel on a lane of their own and
overtake every data frame still queued, as Pipecat's ``SystemFrame`` does
(``frames/frames.py``). ``AgentSpeech`` is the handle of one agent utterance: the
transport reports when its playout started and when it finished (how much was played,
and whether it was cut), so the session keeps in history only what the caller heard and
the turn ledger and graceful shutdown await the end of playout instead of polling for it,
as LiveKit's ``SpeechHandle.wait_for_playout()`` (``voice/speech_handle.py``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voice.dsp.pcm import pcm_ms


@dataclass(frozen=True, slots=True)
class Playout:
    """How an utterance's playout ended, as its transport reported it."""

    played_ms: float  # audio the caller heard
    interrupted: bool  # cut (barge-in, hang-up) rather than played to its end
    at: float  # loop time of the report


@dataclass(eq=False)
class AgentSpeech:
    """One agent utterance, from its first audio to its last, or its interruption."""

    turn: int
    text: str
    rate: int
    caller_text: str = ""
    caller_text_raw: str = ""  # before entity correction
    caller_speech_end_at: float | None = None  # loop time the caller's speech ended
    caller_speech_start_at: float | None = None  # when the utterance began (its audio's start)
    timings: dict[str, int] = field(default_factory=dict)  # stt_ms, llm_first_token_ms, …
    # When each stage reached this reply (monotonic clock, first time only), for the
    # turn's waterfall: where the time between the caller's last word and our first went.
    marks: dict[str, float] = field(default_factory=dict)
    # Told each new mark's name: the console shows the call's stage (voice.live).
    observer: Callable[[str], None] | None = field(default=None, repr=False)
    audio_bytes: int = 0
    complete: bool = False  # the last audio of the utterance has been produced
    first_sent_at: float | None = None
    played_ms: float | None = None  # reported by the transport when playout ended
    interrupted_at: float | None = None
    # (clause text, ms of audio before it) in order, so the heard part can be cut out.
    clauses: list[tuple[str, float]] = field(default_factory=list)
    # Every byte produced, kept so a falsely interrupted reply can resume where it was cut.
    audio: bytearray = field(default_factory=bytearray, repr=False)
    # Set on a reply cut by a backchannel: the continuation that carries on speaking it.
    resumed_by: AgentSpeech | None = field(default=None, repr=False)
    # A continuation keeps its reply's end-to-end latency (its own audio came later).
    inherited_e2e_ms: int | None = None
    # Tool calls made for this reply (as stored with the turn), and the filler said
    # while they ran ("One moment, let me check."), which is not part of the answer.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    filler: str = ""
    # Set once, by the transport, when playout ends; ``wait_for_playout`` wakes on it.
    playout: Playout | None = None
    _started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def playout_started(self, *, at: float) -> None:
        """The transport: the caller's line began playing this utterance at ``at``."""
        if self.first_sent_at is None:
            self.first_sent_at = at
        self._started.set()

    def playout_finished(self, *, played_ms: float, interrupted: bool, at: float) -> None:
        """The transport: playout ended at ``at`` with ``played_ms`` heard. The first
        report stands: a ``cleared`` mark after the kill repeats what the cut said."""
        if self.playout is not None:
            return
        self.played_ms = max(0.0, min(played_ms, self.audio_ms))
        self.playout = Playout(played_ms=self.played_ms, interrupted=interrupted, at=at)
        self._finished.set()

    @property
    def playout_began(self) -> bool:
        return self._started.is_set()

    async def wait_for_playout(self) -> Playout:
        """Until the transport reports the end of playout (played out, or cut)."""
        await self._finished.wait()
        if self.playout is None:  # set before the event, always
            raise RuntimeError("playout finished without a report")
        return self.playout

    @property
    def spoken_text(self) -> str:
        """The answer without the filler: what the conversation history keeps."""
        return self.text.removeprefix(self.filler).strip() if self.filler else self.text

    def unheard_text(self, heard_ms: float) -> str:
        """The clauses (or the words of a cut clause) the caller has not heard yet."""
        if not self.clauses:
            return self.text
        rest = []
        for index, (clause, start_ms) in enumerate(self.clauses):
            end_ms = self.clauses[index + 1][1] if index + 1 < len(self.clauses) \
                else self.audio_ms
            if end_ms <= heard_ms:
                continue
            words = clause.split()
            share = max(0.0, (heard_ms - start_ms) / max(end_ms - start_ms, 1.0))
            rest.append(" ".join(words[int(len(words) * share):]))
        return " ".join(part for part in rest if part)

    def heard_text(self, now: float) -> str:
        """The part of the reply the caller heard: whole clauses, the last one cut by words."""
        heard_ms = self.heard_ms(now)
        if heard_ms >= self.audio_ms or not self.clauses:
            return self.text
        parts = []
        for index, (clause, start_ms) in enumerate(self.clauses):
            if start_ms >= heard_ms:
                break
            end_ms = self.clauses[index + 1][1] if index + 1 < len(self.clauses) \
                else self.audio_ms
            share = (heard_ms - start_ms) / max(end_ms - start_ms, 1.0)
            words = clause.split()
            parts.append(" ".join(words[: max(1, int(len(words) * min(share, 1.0)))]))
        return " ".join(parts)

    @property
    def audio_ms(self) -> float:
        return pcm_ms(self.audio_bytes, self.rate)

    def heard_ms(self, now: float) -> float:
        """How much the caller heard: confirmed playout, else the time since it started."""
        if self.played_ms is not None:
            return min(self.played_ms, self.audio_ms)
        if self.first_sent_at is None:
            return 0.0
        until = self.interrupted_at if self.interrupted_at is not None else now
        return max(0.0, min(self.audio_ms, (until - self.first_sent_at) * 1000))

    def playing(self, now: float) -> bool:
        """Whether the caller is (probably) hearing this utterance right now."""
        if self.playout is not None or self.interrupted_at is not None \
                or self.first_sent_at is None:
            return False
        if not self.complete:
            return True
        return self.heard_ms(now) < self.audio_ms

    def mark(self, name: str, at: float) -> None:
        if name in self.marks:
            return
        self.marks[name] = at
        if self.observer is not None:
            self.observer(name)

    def waterfall_ms(self) -> dict[str, int]:
        """Each mark as ms after the caller's speech ended, in the order reached, ending
        with the first agent audio sent: the per-stage waterfall stored with the turn."""
        if self.caller_speech_end_at is None:
            return {}
        end = self.caller_speech_end_at
        out = {name: round((at - end) * 1000) for name, at in self.marks.items()}
        if self.first_sent_at is not None:
            out["first_audio_sent"] = round((self.first_sent_at - end) * 1000)
        return out

    @property
    def e2e_ms(self) -> int | None:
        if self.inherited_e2e_ms is not None:
            return self.inherited_e2e_ms
        if self.first_sent_at is None or self.caller_speech_end_at is None:
            return None
        return max(0, round((self.first_sent_at - self.caller_speech_end_at) * 1000))


class SystemEvent:
    """Control: handled as soon as it is put, ahead of any data frame still queued."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """A piece of agent audio (one sentence, usually) at the call's sample rate."""

    speech: AgentSpeech
    pcm: bytes
    final: bool = False
    text: str = ""  # the words in ``pcm`` (one clause), for textContent


@dataclass(frozen=True, slots=True)
class Transcript:
    role: str  # "caller" or "agent"
    text: str
    final: bool
    turn: int


@dataclass(frozen=True, slots=True)
class Interruption(SystemEvent):
    """The caller barged in: stop playing ``speech`` now (its queued audio is dropped).

    Whether the caller really took the turn is decided later: a ``BargeInConfirmed`` or a
    ``SpeechResumed`` for the same ``speech`` follows (unless the call ends first).
    """

    speech: AgentSpeech
    speech_onset_at: float


@dataclass(frozen=True, slots=True)
class BargeInConfirmed(SystemEvent):
    """The caller kept talking: ``speech`` ends where it was cut and is a turn of its own."""

    speech: AgentSpeech


@dataclass(frozen=True, slots=True)
class SpeechResumed(SystemEvent):
    """It was a backchannel: ``speech`` carries on in ``continuation`` (one reply, one turn)."""

    speech: AgentSpeech
    continuation: AgentSpeech


@dataclass(frozen=True, slots=True)
class EndCall(SystemEvent):
    """The session ends the call. It overtakes queued audio, so a session that wants its
    last words heard puts it once they have played out."""

    reason: str


SessionEvent = (AgentAudio | Transcript | Interruption | BargeInConfirmed | SpeechResumed
                | EndCall)


class SessionEvents:
    """The two lanes from a session to its transport, read as one queue.

    ``get`` returns the oldest pending system event if there is one, else the oldest data
    frame: an interruption put behind a second of queued audio is the next thing read.
    Each lane keeps its own order. Unbounded, like the ``asyncio.Queue`` it replaces:
    ``put`` never waits, so ``put_nowait`` is the same call for code that cannot await.
    As with ``asyncio.Queue``, the reader calls ``task_done`` once it has handled an
    event, and ``join`` waits until every event put has been handled (graceful shutdown:
    the transport has sent all the session had to say).
    """

    def __init__(self) -> None:
        self._system: deque[SessionEvent] = deque()
        self._data: deque[SessionEvent] = deque()
        self._ready = asyncio.Event()
        self._unfinished = 0
        self._handled = asyncio.Event()
        self._handled.set()

    def put_nowait(self, event: SessionEvent) -> None:
        lane = self._system if isinstance(event, SystemEvent) else self._data
        lane.append(event)
        self._unfinished += 1
        self._handled.clear()
        self._ready.set()

    def task_done(self) -> None:
        """The reader has handled one event it got."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called more times than events were put")
        self._unfinished -= 1
        if self._unfinished == 0:
            self._handled.set()

    async def join(self) -> None:
        """Until every event put so far has been got and handled."""
        await self._handled.wait()

    async def put(self, event: SessionEvent) -> None:
        self.put_nowait(event)

    def get_nowait(self) -> SessionEvent:
        if self._system:
            return self._system.popleft()
        if self._data:
            return self._data.popleft()
        raise asyncio.QueueEmpty

    async def get(self) -> SessionEvent:
        while self.empty():
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()

    def empty(self) -> bool:
        return not self._system and not self._data

    def qsize(self) -> int:
        return len(self._system) + len(self._data)
