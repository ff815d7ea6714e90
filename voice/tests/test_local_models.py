"""Real models through the real server: Piper speaks a caller's question over an 8 kHz
μ-law line, Whisper transcribes it, Qwen answers, Piper speaks the answer back."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from calls.models import Call
from voice import models, stt, tts
from voice.client import ForkClient, Segment
from voice.dsp import g711
from voice.dsp.resample import resample
from voice.tests.conftest import LiveServer
from voice.wer import word_error_rate

pytestmark = [pytest.mark.models, pytest.mark.slow]

QUESTION = "Hello, what are your opening hours on Saturday morning?"
NUMBERS = {"seven": "7", "three": "3", "eight": "8", "ten": "10"}


def words(text: str) -> list[str]:
    tokens = re.findall(r"[a-zäöüß0-9']+", text.lower())
    return [NUMBERS.get(t, t) for t in tokens]


def wer(reference: str, hypothesis: str) -> float:
    return word_error_rate(words(reference), words(hypothesis))


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in models.required():
        models.assemble(name)


def _telephone(pcm: bytes, rate: int) -> bytes:
    return g711.ulaw_decode(g711.ulaw_encode(resample(pcm, rate, 8000)))


async def test_a_spoken_question_is_understood_and_answered(
        assembled: None, live_server_process: Any) -> None:
    server: LiveServer = live_server_process(TOM_SESSION_BACKEND="local")
    voice = await sync_to_async(tts.get_tts)("en")
    question = _telephone(await sync_to_async(voice.synthesize)(QUESTION), voice.rate)
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"},
                        rate=8000, segments=[Segment(question, pause_s=8.0)])
    report = await client.run()
    assert report.errors == []
    caller = [t["text"] for t in report.transcripts if t["role"] == "caller"]
    agent = [t["text"] for t in report.transcripts if t["role"] == "agent"]
    # A long pause after "Hello," may end a turn (seen on a loaded CI machine); the caller
    # going on before any reply joins the halves, and the last line is the whole question.
    assert caller and wer(QUESTION, caller[-1]) <= 0.15, caller
    assert agent and agent[0]
    # What the caller heard, transcribed by Whisper, is English that relates to the question.
    heard = report.heard_pcm(8000)
    assert len(heard) > 8000  # more than half a second of agent audio
    said = await sync_to_async(stt.get_stt().transcribe)(heard, rate=8000, language="en")
    assert len(words(said.text)) >= 3
    assert set(words(said.text)) & {"open", "opening", "hours", "saturday", "am", "pm", "we",
                                    "closed", "morning"}, said.text
    call = await database_sync_to_async(Call.objects.get)(uuid=call_uuid)
    turn = await database_sync_to_async(call.turns.get)(index=0)
    assert turn.caller_text == caller[-1] and turn.stt_ms and turn.llm_first_token_ms
    assert turn.tts_first_audio_ms is not None and turn.e2e_ms is not None
    # The waterfall: every stage in order, ending where the end-to-end latency does.
    fall = turn.waterfall
    assert fall["stt_start"] <= fall["stt_done"] <= fall["understood"] <= fall["routed"] \
        <= fall["llm_request"] <= fall["llm_first_text"] <= fall["tts_first_audio"] \
        <= fall["first_audio_sent"], fall
    assert fall["turn_start"] >= 400 and abs(fall["first_audio_sent"] - turn.e2e_ms) <= 50


def test_german_espeak_utterance_is_transcribed_in_german(
        assembled: None, capsys: pytest.CaptureFixture[str]) -> None:
    reference = "Guten Tag, haben Sie Bremsbeläge für einen Golf?"
    engine = tts.get_tts("de")
    assert isinstance(engine, tts.EspeakTts)  # no German Piper voice ships: the fallback speaks
    audio = _telephone(engine.synthesize(reference), engine.rate)
    # Biased as a call with these catalog words is (TOM_STT_BIAS=hotwords): unbiased, this
    # one sentence sits on Whisper base's no-speech cutoff (no_speech_prob 0.60 against 0.6,
    # avg_logprob -1.8), so whether it came back empty turned on inaudible resampler detail.
    result = stt.get_stt().transcribe(audio, rate=8000, language="de",
                                      hotwords="Bremsbeläge Golf")
    assert result.language == "de" and words(result.text)
    with capsys.disabled():  # the issue asks for the number, good or bad
        score = wer(reference, result.text)
        print(f"\nGerman espeak over 8 kHz mu-law, Whisper base: WER {score:.0%} "  # noqa: T201
              f"({result.text!r})")


def test_model_assembly_refuses_a_corrupt_part(tmp_path: Path, settings: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_DATA_DIR = tmp_path
    part = tmp_path / "pkg" / "data"
    part.mkdir(parents=True)
    (part / "model.bin.part1").write_bytes(b"not a model")
    spec = models.ModelSpec(name="broken", parts=(("pkg", "data/model.bin.part1"),),
                            target="model.bin", sha256="0" * 64)
    monkeypatch.setitem(models.SPECS, "broken", spec)
    monkeypatch.setattr(models, "package_dir", lambda package: tmp_path / package)
    with pytest.raises(models.ModelError, match="checksum mismatch"):
        models.assemble("broken")
    assert not (tmp_path / "models" / "broken" / "model.bin").exists()


def _onset_s(pcm: bytes, rate: int) -> float:
    """Where speech starts in ``pcm`` (first 10 ms window above -40 dBFS)."""
    from voice.dsp.vad import dbfs

    window = rate // 100 * 2
    for index in range(0, len(pcm) - window, window):
        if dbfs(pcm[index:index + window]) > -40:
            return index / 2 / rate
    return 0.0


async def test_caller_interrupts_the_agent_mid_reply(assembled: None,
                                                     live_server_process: Any) -> None:
    server: LiveServer = live_server_process(TOM_SESSION_BACKEND="local")
    voice = await sync_to_async(tts.get_tts)("en")
    question = _telephone(await sync_to_async(voice.synthesize)(
        "Please tell me everything about your shop, your services and your prices."),
        voice.rate)
    interruption = _telephone(await sync_to_async(voice.synthesize)(
        "Stop, I only need the price of brake pads."), voice.rate)
    call_uuid = str(uuid.uuid4())
    # The caller talks over the answer once 1 s of it has played, however soon it came.
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"},
                        rate=8000, segments=[Segment(question, pause_s=0.0),
                                             Segment(interruption, pause_s=9.0,
                                                     over_reply_s=1.0)])
    report = await client.run()
    assert report.errors == []
    onset = report.segment_starts[1] + _onset_s(interruption, 8000)
    agent_started = report.first_audio_after(report.segment_ends[0])
    assert agent_started is not None and agent_started < report.segment_starts[1], \
        "the agent had not started speaking when the caller interrupted"
    kills = [k for k in report.kills if k >= onset - 0.05]
    assert kills, "no killAudio after the interruption"
    print(f"\nbarge-in: killAudio {1000 * (kills[0] - onset):.0f} ms after the interruption's "  # noqa: T201
          "speech onset (client clock)")
    assert kills[0] - onset <= 0.12, f"killAudio {1000 * (kills[0] - onset):.0f} ms after onset"
    callers = [t for t in report.transcripts if t["role"] == "caller"]
    assert len(callers) == 2 and "brake" in callers[1]["text"].lower()
    agents = [t for t in report.transcripts if t["role"] == "agent" and t["turn"] == 2]
    assert agents and agents[0]["text"], "the interruption was not answered"
    turns = await database_sync_to_async(
        lambda: list(Call.objects.get(uuid=call_uuid).turns.order_by("index")))()
    interrupted = turns[0]
    assert interrupted.barge_in is True
    assert interrupted.agent_audio_heard_ms < interrupted.agent_audio_ms


def test_whisper_reads_a_short_window_and_a_second_pass_reuses_its_encoding(
        assembled: None, settings: Any) -> None:
    settings.TOM_STT_WINDOW_S = 10
    engine = tts.get_tts("en")
    audio = _telephone(engine.synthesize(QUESTION), engine.rate)
    whisper = stt.WhisperStt(models.stt_model_dir("base"))
    windows: list[int] = []
    encode = whisper.model.encode

    def counting(features: Any) -> Any:
        windows.append(features.shape[-1])
        return encode(features)

    whisper.model.encode = counting  # type: ignore[method-assign]
    plain = whisper.transcribe(audio, rate=8000, language="en")
    prompted = whisper.transcribe(audio, rate=8000, language="en",
                                  prompt="Car parts: Volkswagen Golf, brake pads.")
    assert windows == [1000]  # 10 s of mel frames, not 30 s; and encoded once for both
    assert whisper.encoded.hits == 1
    assert wer(QUESTION, plain.text) <= 0.2 and wer(QUESTION, prompted.text) <= 0.2
