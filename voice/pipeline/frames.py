"""The frames that travel between stages.

Data frames are ordered and belong to a turn: when the turn is cancelled (barge-in, a
new utterance) every stage drops those it still holds and stops the one it works on.
System frames are handled at once, ahead of queued data, and are never dropped. As in
Pipecat (``frames/frames.py``), a stage handles the frames it knows and passes on the rest.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from voice.llm_deltas import ToolCallRequest
from voice.session.events import AgentSpeech


class Direction(enum.Enum):
    DOWN = "down"  # from the caller towards the output
    UP = "up"  # from the output back towards the caller's side


class Frame:
    """Base of every frame."""

    __slots__ = ()


class SystemFrame(Frame):
    """Handled as soon as it is queued, ahead of any data frame; never dropped."""

    __slots__ = ()


class DataFrame(Frame):
    """Ordered within a stage; dropped when its turn is cancelled."""

    __slots__ = ()


# --- inbound ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallerAudio(DataFrame):
    """Caller audio as the module sent it, decoded: L16 mono at the call's rate."""

    pcm: bytes
    at: float  # loop time it arrived


@dataclass(frozen=True, slots=True)
class AudioFrame(DataFrame):
    """Exactly 20 ms of caller audio at 16 kHz: the one stream VAD and STT share."""

    pcm: bytes
    at: float


@dataclass(frozen=True, slots=True)
class InputEnded(DataFrame):
    """No more caller audio will come (graceful shutdown): what was said is a turn."""

    at: float


# --- turn detection → STT ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EarlyUtterance(DataFrame):
    """The caller paused: their words so far, for a transcription started early."""

    pcm: bytes
    turn: int | None = None
    next_turn: int = 0  # the turn these words become if the caller says no more


@dataclass(frozen=True, slots=True)
class SpeechContinued(SystemFrame):
    """The caller went on (or it was a backchannel): an early transcription is stale."""


@dataclass(frozen=True, slots=True)
class Utterance(DataFrame):
    """A caller utterance has ended: the turn starts."""

    pcm: bytes
    turn: int | None
    speech_end_at: float


# --- STT → context → LLM --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EarlyCallerText(DataFrame):
    """What the caller said before their pause, heard while the end-of-turn silence is
    still being waited out: the context stage prepares the request on it. Not a turn's
    frame (no ``turn``): a failure here costs a guess, never an apology."""

    text: str  # after entity correction, as CallerText's speech.caller_text will be
    speculates: int  # the turn it becomes


@dataclass(frozen=True, slots=True)
class SpeculativeRequest(DataFrame):
    """The request the turn will make if its transcript stays what the pause gave: the
    LLM stage starts on it and keeps the output only for an identical ``LlmRequest``."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    speculates: int


@dataclass(frozen=True, slots=True)
class CallerText(DataFrame):
    """What the caller said (``speech.caller_text``); ``speech`` is the reply's handle."""

    speech: AgentSpeech
    turn: int | None


@dataclass(frozen=True, slots=True)
class LlmRequest(DataFrame):
    speech: AgentSpeech
    turn: int | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    may_call_tools: bool = True  # the follow-up to a tool result may not call again


@dataclass(frozen=True, slots=True)
class LlmText(DataFrame):
    speech: AgentSpeech
    turn: int | None
    text: str


@dataclass(frozen=True, slots=True)
class LlmRoundEnd(DataFrame):
    """One generation ended; ``final`` unless its tool calls lead to another."""

    speech: AgentSpeech
    turn: int | None
    final: bool


@dataclass(frozen=True, slots=True)
class ToolRequests(DataFrame):
    """Upstream, LLM → context: run these, then ask again. ``spoken``: said before them."""

    speech: AgentSpeech
    turn: int | None
    calls: list[ToolCallRequest]
    spoken: str


@dataclass(frozen=True, slots=True)
class StopGeneration(SystemFrame):
    """Upstream, clauses → LLM: the reply said enough; stop generating text."""

    turn: int


# --- clauses → TTS → output -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Clause(DataFrame):
    speech: AgentSpeech
    turn: int | None
    text: str
    filler: bool = False  # "One moment, let me check.": said, but not part of the answer


@dataclass(frozen=True, slots=True)
class TurnFailed(DataFrame):
    """A stage failed (or every model slot stayed busy): the caller hears an apology."""

    turn: int | None
    speech: AgentSpeech | None
    speech_end_at: float
    engine_failed: bool = False  # the TTS voice itself failed: apologise in another
    overload: bool = False  # a model slot stayed busy (counted as back-pressure)


@dataclass(frozen=True, slots=True)
class TurnDone(DataFrame):
    """The turn ended without a reply (nothing was heard)."""

    turn: int | None


@dataclass(frozen=True, slots=True)
class SpeechAudio(DataFrame):
    """Agent audio at the call's rate, for the output."""

    speech: AgentSpeech
    pcm: bytes
    final: bool = False
    text: str = ""
    turn: int | None = None


@dataclass(frozen=True, slots=True)
class TranscriptLine(DataFrame):
    """A transcript for the module and the record; kept even if its turn is cancelled."""

    role: str
    text: str
    final: bool
    line_turn: int


# --- system ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CancelTurn(SystemFrame):
    """Stop every stage's work on turns up to ``upto``."""

    upto: int
    reason: str


@dataclass(frozen=True, slots=True)
class BargeIn(SystemFrame):
    """The caller spoke over ``speech``: silence it now (not yet a decision)."""

    speech: AgentSpeech
    speech_onset_at: float


@dataclass(frozen=True, slots=True)
class BargeInConfirmed(SystemFrame):
    """The caller kept talking: ``speech`` ends at ``heard`` (its text the caller heard)."""

    speech: AgentSpeech
    heard: str


@dataclass(frozen=True, slots=True)
class Resumed(SystemFrame):
    """A backchannel: ``speech`` carries on in ``continuation``."""

    speech: AgentSpeech
    continuation: AgentSpeech


@dataclass(frozen=True, slots=True)
class AgentStarted(SystemFrame):
    """Upstream, output → turns: ``speech`` is what the caller hears now."""

    speech: AgentSpeech


@dataclass(frozen=True, slots=True)
class AgentReplied(SystemFrame):
    """Upstream, TTS → context: the reply (or apology) is complete; ``text`` for history."""

    speech: AgentSpeech
    text: str
    apology: bool = False


def frame_turn(frame: Frame) -> int | None:
    """The turn a data frame works for; None for frames that outlive any turn."""
    if isinstance(frame, SystemFrame | TranscriptLine):
        return None
    return getattr(frame, "turn", None)
