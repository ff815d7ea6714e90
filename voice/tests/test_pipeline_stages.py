"""Each stage alone: frames in, frames out, on a virtual clock (voice.pipeline.testing)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from voice.llm_deltas import LlmDelta, TextDelta, ToolCallRequest
from voice.pipeline.clauses import ClauseStage
from voice.pipeline.context import ContextStage
from voice.pipeline.frames import (
    AgentReplied,
    AgentStarted,
    AudioFrame,
    BargeIn,
    BargeInConfirmed,
    CallerAudio,
    CallerText,
    CancelTurn,
    Clause,
    DataFrame,
    Direction,
    Frame,
    LlmRequest,
    LlmRoundEnd,
    LlmText,
    SpeechAudio,
    StopGeneration,
    SystemFrame,
    ToolRequests,
    TranscriptLine,
    TurnFailed,
    Utterance,
)
from voice.pipeline.inbound import InboundStage
from voice.pipeline.llm_stage import LlmStage
from voice.pipeline.stage import Stage
from voice.pipeline.testing import StageHarness, VirtualClock
from voice.pipeline.tts_stage import TtsStage
from voice.pipeline.turns import TurnStage
from voice.session.apology import APOLOGY_EN
from voice.session.events import AgentSpeech
from voice.signals import voiced
from voice.tts import TtsBackend, TtsError


def _speech(turn: int = 1, rate: int = 8000) -> AgentSpeech:
    return AgentSpeech(turn=turn, text="", rate=rate, caller_text="Do you have brake pads?",
                       caller_speech_end_at=0.0)


# --- the stage machinery ---------------------------------------------------------------
class _Work(DataFrame):
    __slots__ = ("name", "turn")

    def __init__(self, name: str, turn: int | None) -> None:
        self.name, self.turn = name, turn


class _Ping(SystemFrame):
    __slots__ = ()


class SlowStage(Stage):
    """Works each ``_Work`` until released; records what it handled, in order."""

    name = "slow"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail_on = ""

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, _Work):
            self.started.set()
            await self.release.wait()
            if frame.name == self.fail_on:
                raise RuntimeError("model died")
        await self.push(frame, direction)


async def test_system_frames_overtake_queued_data_frames() -> None:
    stage = SlowStage()
    harness = StageHarness(stage)
    await harness.send(_Work("a", 1))
    await harness.send(_Work("b", 1))
    await stage.started.wait()
    await harness.send(_Ping())  # arrives while "a" is in work and "b" waits
    assert [type(f).__name__ for f in harness.down] == ["_Ping"]
    stage.release.set()
    await stage.idle()
    assert [getattr(f, "name", "ping") for f in harness.down] == ["ping", "a", "b"]
    await harness.close()


async def test_cancelling_a_turn_stops_its_work_and_drops_its_frames_only() -> None:
    stage = SlowStage()
    harness = StageHarness(stage)
    for name, turn in (("a", 1), ("b", 1), ("audio", None), ("c", 2)):
        await harness.send(_Work(name, turn))
    await stage.started.wait()
    await harness.send(CancelTurn(upto=1, reason="barge_in"))
    stage.release.set()
    await stage.idle()
    assert [f.name for f in harness.of(_Work)] == ["audio", "c"]
    assert harness.of(CancelTurn)  # passed on to the next stage
    await harness.close()


async def test_a_failed_frame_costs_its_turn_and_the_stage_goes_on() -> None:
    stage = SlowStage()
    stage.fail_on = "a"
    stage.release.set()
    harness = StageHarness(stage)
    await harness.run([_Work("a", 1), _Work("b", 1), _Work("c", 2)])
    assert [f.name for f in harness.of(_Work)] == ["c"]  # b was turn 1's: dropped
    failed = harness.of(TurnFailed)
    assert len(failed) == 1 and failed[0].turn == 1 and not failed[0].engine_failed
    assert [f.upto for f in harness.of(CancelTurn, Direction.UP)] == [1]  # stop the producers
    await harness.close()


async def test_stopping_a_stage_cancels_its_work_and_leaves_nothing_running() -> None:
    stage = SlowStage()
    harness = StageHarness(stage)
    await harness.send(_Work("a", 1))
    await stage.started.wait()
    await harness.close()
    assert stage._runner is not None and stage._runner.done()
    assert stage._work is None or stage._work.done()


# --- inbound ------------------------------------------------------------------------------
async def test_inbound_makes_one_16khz_stream_of_20ms_frames_from_any_chunks() -> None:
    harness = StageHarness(InboundStage(rate=8000))
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()
    chunks = [tone[i:i + 480] for i in range(0, len(tone), 480)]  # 30 ms: not the frame size
    await harness.run([CallerAudio(pcm=c, at=i * 0.03) for i, c in enumerate(chunks)])
    frames = harness.of(AudioFrame)
    assert {len(f.pcm) for f in frames} == {640}  # 20 ms at 16 kHz
    assert len(frames) == 50  # one second in, one second out
    out = np.frombuffer(b"".join(f.pcm for f in frames), dtype="<i2").astype(float)
    # One filter for the whole call: the 300 Hz tone has no step at any chunk boundary.
    steps = np.abs(np.diff(out[200:]))
    assert steps.max() < 2 * np.pi * 300 / 16000 * 8000 * 1.2


# --- turn detection -------------------------------------------------------------------
def _frames16(pcm: bytes, start: float) -> list[AudioFrame]:
    return [AudioFrame(pcm=pcm[i:i + 640], at=start + i / 640 * 0.02)
            for i in range(0, len(pcm) - 639, 640)]


async def test_turn_detection_cuts_an_utterance_and_numbers_the_turn(settings: Any) -> None:
    harness = StageHarness(TurnStage(stop_ms=300, barge_in_ms=None, mixed=False,
                                     preempt_ms=0))
    audio = voiced(16000, 0.6) + bytes(16000 * 2 // 2)  # 0.6 s speech, 0.5 s quiet
    await harness.run(_frames16(audio, 0.0))
    utterances = harness.of(Utterance)
    assert len(utterances) == 1 and utterances[0].turn == 1
    assert 0.55 <= len(utterances[0].pcm) / 32000 <= 0.9  # the speech, not the silence
    assert 0.55 <= utterances[0].speech_end_at <= 0.7


async def test_caller_speech_over_the_agent_silences_it_then_confirms(settings: Any) -> None:
    stage = TurnStage(stop_ms=300, barge_in_ms=200, mixed=False, preempt_ms=0)
    harness = StageHarness(stage)
    speech = _speech()
    speech.clauses.append(("Sure, the pads fit.", 0.0))
    speech.audio += bytes(16000)  # a second at 8 kHz
    speech.audio_bytes, speech.text = len(speech.audio), "Sure, the pads fit."
    speech.first_sent_at = 0.0
    await harness.send(AgentStarted(speech=speech), Direction.UP)  # from the output
    await harness.run(_frames16(voiced(16000, 0.4), 0.1))
    kinds = [type(f).__name__ for f in harness.down]
    assert kinds.index("BargeIn") < kinds.index("CancelTurn") < kinds.index("BargeInConfirmed")
    barge = harness.of(BargeIn)[0]
    # Silenced within the first frames of loud speech (KILL_AFTER_MS), not after 200 ms.
    assert speech.interrupted_at is not None and speech.interrupted_at - 0.1 < 0.15
    assert barge.speech is speech and barge.speech_onset_at <= speech.interrupted_at
    assert harness.of(BargeInConfirmed)[0].heard  # what the caller heard of it


async def test_a_turn_that_leaves_the_caller_silent_too_long_is_given_up() -> None:
    # 0.5 s after the caller stopped: 0.2 s after the VAD's 300 ms of silence cut the turn.
    stage = TurnStage(stop_ms=300, barge_in_ms=None, mixed=False, preempt_ms=0,
                      overdue_s=0.5)
    harness = StageHarness(stage)
    audio = voiced(16000, 0.6) + bytes(16000)  # 0.6 s speech, 0.5 s quiet
    await harness.run(_frames16(audio, 0.0))
    turn = harness.of(Utterance)[0].turn
    assert not harness.of(TurnFailed)  # not before its time
    await asyncio.sleep(0.6)  # nothing downstream answered (the models are swamped)
    cancels, failed = harness.of(CancelTurn), harness.of(TurnFailed)
    assert [c.reason for c in cancels] == ["overdue"] and cancels[0].upto == turn
    assert len(failed) == 1 and failed[0].turn == turn
    assert failed[0].overload and failed[0].engine_failed  # espeak-ng says it: no model
    assert harness.down.index(cancels[0]) < harness.down.index(failed[0])

    # A turn the caller hears something of (the reply, a filler) is not given up.
    second = StageHarness(TurnStage(stop_ms=300, barge_in_ms=None, mixed=False,
                                    preempt_ms=0, overdue_s=0.5))
    await second.run(_frames16(audio, 0.0))
    speech = _speech(turn=second.of(Utterance)[0].turn)
    await second.send(AgentStarted(speech=speech), Direction.UP)
    await asyncio.sleep(0.6)
    assert not second.of(TurnFailed) and not second.of(CancelTurn)
    for closing in (harness, second):
        await closing.close()
        assert closing.stage._overdue is None  # type: ignore[attr-defined]


# --- context ----------------------------------------------------------------------------
class _Hook:
    def __init__(self) -> None:
        self.calls: list[ToolCallRequest] = []

    async def route(self, *, text: str, language: str) -> list[ToolCallRequest]:
        return []

    async def schemas(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "parts_lookup"}}]

    async def call(self, tool_call: ToolCallRequest, *, language: str,
                   call_id: int | None) -> Any:
        from voice.tools import ToolOutcome

        self.calls.append(tool_call)
        return ToolOutcome(name=tool_call.name, ok=True, text="price 46.38 EUR",
                           record={"tool": tool_call.name, "ok": True})


def _context(hook: Any = None) -> ContextStage:
    return ContextStage(language="en", system_prompt=lambda: "You are TOM.", tools=hook,
                        call_id=None, fillers=False)


async def test_context_asks_the_llm_with_history_and_tools() -> None:
    harness = StageHarness(_context(_Hook()))
    speech = _speech()
    await harness.run([CallerText(speech=speech, turn=1)])
    line, request = harness.down
    assert isinstance(line, TranscriptLine) and line.role == "caller"
    assert isinstance(request, LlmRequest) and request.may_call_tools
    assert request.messages[0] == {"role": "system", "content": "You are TOM."}
    assert request.messages[-1] == {"role": "user", "content": "Do you have brake pads?"}
    assert request.tools and request.tools[0]["function"]["name"] == "parts_lookup"
    await harness.close()


async def test_tool_requests_run_and_the_llm_goes_on_from_what_was_said() -> None:
    hook = _Hook()
    harness = StageHarness(_context(hook))
    speech = _speech()
    await harness.run([CallerText(speech=speech, turn=1)])
    call = ToolCallRequest(name="parts_lookup", arguments={"query": "brake pads"})
    await harness.run([ToolRequests(speech=speech, turn=1, calls=[call],
                                    spoken="Let me check.")], Direction.UP)
    follow_up = harness.of(LlmRequest)[-1]
    assert hook.calls == [call] and not follow_up.may_call_tools and not follow_up.tools
    assert "46.38 EUR" in follow_up.messages[-2]["content"]  # the facts, in the caller's turn
    assert follow_up.messages[-1] == {"role": "assistant", "content": "Let me check."}
    await harness.close()


async def test_history_keeps_the_reply_or_only_what_was_heard_of_it() -> None:
    stage = _context()
    harness = StageHarness(stage)
    speech = _speech()
    await harness.run([CallerText(speech=speech, turn=1)])
    await harness.send(AgentReplied(speech=speech, text="Yes. They cost fifty euros."),
                       Direction.UP)
    assert stage.history[-1] == {"role": "assistant", "content": "Yes. They cost fifty euros."}
    await harness.send(BargeInConfirmed(speech=speech, heard="Yes. They cost"))
    assert stage.history[-1] == {"role": "assistant", "content": "Yes. They cost"}
    await harness.close()


# --- LLM ----------------------------------------------------------------------------------
class ScriptedLlm:
    def __init__(self, deltas: list[LlmDelta], clock: VirtualClock) -> None:
        self.deltas, self.clock = deltas, clock
        self.stopped = threading.Event()

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        self.clock.advance(0.25)  # the prompt's evaluation, on the virtual clock
        for delta in self.deltas:
            if cancel.is_set():
                self.stopped.set()
                return
            yield delta


async def _llm_harness(deltas: list[LlmDelta]) -> tuple[StageHarness, ScriptedLlm]:
    clock = VirtualClock()
    llm = ScriptedLlm(deltas, clock)

    async def backend() -> Any:
        return llm

    return StageHarness(LlmStage(backend=backend), clock=clock), llm


async def test_llm_text_flows_down_and_a_tool_call_goes_up_after_it() -> None:
    call = ToolCallRequest(name="parts_lookup", arguments={"query": "pads"})
    harness, _ = await _llm_harness([TextDelta("Let me "), TextDelta("check. "), call])
    speech = _speech()
    await harness.run([LlmRequest(speech=speech, turn=1, messages=[])])
    assert [f.text for f in harness.of(LlmText)] == ["Let me ", "check. "]
    assert [f.final for f in harness.of(LlmRoundEnd)] == [False]
    requests = harness.of(ToolRequests, Direction.UP)
    assert len(requests) == 1 and requests[0].calls == [call]
    assert requests[0].spoken == "Let me check. "
    assert speech.timings["llm_first_token_ms"] == 250  # exact: the virtual clock
    await harness.close()


async def test_a_follow_up_may_not_call_tools_again() -> None:
    call = ToolCallRequest(name="parts_lookup", arguments={})
    harness, _ = await _llm_harness([TextDelta("Yes, in stock. "), call])
    await harness.run([LlmRequest(speech=_speech(), turn=1, messages=[],
                                  may_call_tools=False)])
    assert [f.final for f in harness.of(LlmRoundEnd)] == [True]
    assert harness.of(ToolRequests, Direction.UP) == []
    await harness.close()


# --- clauses ---------------------------------------------------------------------------------
async def test_clauses_leave_as_they_complete_and_a_long_reply_is_stopped() -> None:
    harness = StageHarness(ClauseStage(max_sentences=1))
    speech = _speech()
    tokens = ["Sure, ", "the pads ", "fit your car. ", "They cost ", "fifty euros."]
    await harness.run([LlmText(speech=speech, turn=1, text=t) for t in tokens])
    assert [c.text for c in harness.of(Clause)] == ["Sure, the pads fit your car."]
    assert harness.of(StopGeneration, Direction.UP) == [StopGeneration(turn=1)]
    await harness.close()


async def test_the_end_of_a_round_flushes_the_last_clause() -> None:
    harness = StageHarness(ClauseStage(max_sentences=3))
    speech = _speech()
    await harness.run([LlmText(speech=speech, turn=1, text="Yes, we do"),
                       LlmRoundEnd(speech=speech, turn=1, final=True)])
    assert [type(f).__name__ for f in harness.down] == ["Clause", "LlmRoundEnd"]
    assert harness.of(Clause)[0].text == "Yes, we do"
    await harness.close()


# --- TTS ----------------------------------------------------------------------------------------
class WordTts(TtsBackend):
    rate = 16000

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail

    def synthesize(self, text: str) -> bytes:
        if self.fail:
            raise TtsError("the voice died")
        return bytes(len(text.split()) * 3200)  # 100 ms a word at 16 kHz


def _tts(engine: TtsBackend) -> TtsStage:
    async def voice() -> TtsBackend:
        return engine

    return TtsStage(engine=voice, rate=8000, language="en")


async def test_tts_speaks_each_clause_at_the_call_rate_and_ends_the_reply() -> None:
    harness = StageHarness(_tts(WordTts()))
    speech = _speech()
    await harness.run([Clause(speech=speech, turn=1, text="Yes, we do."),
                       Clause(speech=speech, turn=1, text="Fifty euros."),
                       LlmRoundEnd(speech=speech, turn=1, final=True)])
    audio = harness.of(SpeechAudio)
    assert [len(a.pcm) for a in audio] == [4800, 3200, 0]  # 8 kHz: half the bytes
    assert audio[-1].final and speech.complete and speech.text == "Yes, we do. Fifty euros."
    assert harness.of(AgentReplied, Direction.UP)[0].text == speech.text
    assert harness.of(TranscriptLine)[0].role == "agent"
    await harness.close()


@pytest.mark.django_db
async def test_a_voice_that_fails_apologises_once_in_another_voice() -> None:
    harness = StageHarness(_tts(WordTts(fail=True)))
    speech = _speech()
    await harness.run([Clause(speech=speech, turn=1, text="Yes, we do."),
                       Clause(speech=speech, turn=1, text="Fifty euros.")])
    audio = harness.of(SpeechAudio)
    assert len(audio) == 1 and audio[0].text == APOLOGY_EN and audio[0].final
    assert audio[0].pcm  # espeak-ng said it
    await harness.close()


async def test_an_apology_takes_the_unanswered_question_out_of_history() -> None:
    stage = _context()
    harness = StageHarness(stage)
    speech = _speech()
    await harness.run([CallerText(speech=speech, turn=1)])
    assert stage.history[-1]["role"] == "user"
    await harness.send(AgentReplied(speech=speech, text=APOLOGY_EN, apology=True),
                       Direction.UP)
    # The caller is asked to say it again: neither the question nor the apology stays,
    # so the model never learns to answer with the apology.
    assert stage.history == []
    await harness.close()
