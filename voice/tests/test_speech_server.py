"""TOM's speech server (voice.speech): Whisper batched across calls, Piper clauses in
priority order, out of the web process and supervised like llama-server.

Real models: Whisper tiny.en and the packaged Piper voice (joe), both shipped whole in
their packages. One server (started by the supervisor, as a web process starts it)
serves the module; the kill -9 tests restart it, the last one through a live daphne."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from calls.models import Call
from voice import backends, models, tts
from voice.client import ForkClient, Segment
from voice.dsp import g711
from voice.dsp.resample import resample
from voice.inference.host import HostServer
from voice.session.apology import APOLOGY_EN
from voice.speech.backend import SPEECH_SPEC, SpeechServerStt, SpeechServerTts, speech_argv
from voice.speech.server import form_fields
from voice.tests.conftest import LiveServer
from voice.wer import word_error_rate

pytestmark = [pytest.mark.models, pytest.mark.slow]

SENTENCES = ("Hello, what are your opening hours on Saturday morning?",
             "Do you sell brake pads for a Volkswagen Golf?",
             "I would like to order a new battery for my car.")
FIRST, SECOND = SENTENCES[0], "Thank you. Do you sell brake pads for a Volkswagen Golf?"
# Long enough that its decode is still running when the requests after it arrive.
LONG = " ".join(["Please tell me everything about your opening hours, your prices for "
                 "brake pads, batteries and tyres, and whether you deliver to my town."] * 2)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _wer(reference: str, hypothesis: str) -> float:
    return word_error_rate(_words(reference), _words(hypothesis))


def _telephone(pcm: bytes, rate: int) -> bytes:
    return g711.ulaw_decode(g711.ulaw_encode(resample(pcm, rate, 8000)))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostServer]:
    """The host's speech server, supervised by this process, with one TTS worker (so the
    priority order is observable) and Whisper tiny.en."""
    data = tmp_path_factory.mktemp("speech")
    with pytest.MonkeyPatch.context() as env:  # the child reads its settings from here
        env.setenv("TOM_DATA_DIR", str(data))
        env.setenv("TOM_STT_MODEL", "tiny.en")
        env.setenv("TOM_STT_MODELS", "")
        env.setenv("TOM_STT_BATCH", "4")
        env.setenv("TOM_LOG_LEVEL", "INFO")
        spec = dataclasses.replace(
            SPEECH_SPEC, argv=lambda port: [*speech_argv(port), "--tts-workers", "1"])
        host = HostServer(run_dir=data / "run", log_path=data / "speech-server.log", port=0,
                          start_timeout_s=180, spec=spec)
        host.endpoint(timeout=180)
        try:
            yield host
        finally:
            if host.supervisor is not None:
                host.supervisor.stop()


@pytest.fixture(scope="module")
def voice_rate() -> int:
    path = models.piper_voice_path()
    return int(json.loads(Path(f"{path}.json").read_text())["audio"]["sample_rate"])


@pytest.fixture(scope="module")
def spoken(speech: HostServer) -> dict[str, bytes]:
    """Each sentence spoken by the server's Piper over an 8 kHz mu-law line."""
    voice = SpeechServerTts(speech, language="en", voice="", length_scale=None)
    return {text: _telephone(voice.synthesize(text), voice.rate) for text in (*SENTENCES, LONG)}


def _health(host: HostServer) -> dict[str, Any]:
    response = httpx.get(f"{host.endpoint(timeout=5)}/health", timeout=5)
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def _until(predicate: Any, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_alias_names_the_server_backends() -> None:
    assert backends.backend_class("stt", spec="speech-server") is SpeechServerStt
    assert backends.backend_class("tts", spec="speech-server") is SpeechServerTts


def test_the_form_parser_keeps_binary_files_whole() -> None:
    data = bytes(range(256)) * 64 + b"\r\n--b\r\n\n\r"
    body = (b'--b1\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny.en\r\n'
            b'--b1\r\nContent-Disposition: form-data; name="file"; filename="u.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + data + b"\r\n--b1--\r\n")
    fields = form_fields("multipart/form-data; boundary=b1", body)
    assert fields == {"model": b"tiny.en", "file": data}


def test_it_transcribes_what_it_speaks_at_the_voices_rate(
        speech: HostServer, spoken: dict[str, bytes], voice_rate: int) -> None:
    voice = SpeechServerTts(speech, language="en", voice="", length_scale=None)
    assert voice.rate == voice_rate  # known before the first clause
    pcm = voice.synthesize(FIRST)
    assert len(pcm) > 2 * voice_rate  # more than a second of speech
    stt = SpeechServerStt(speech, model="tiny.en")
    heard = stt.transcribe(_telephone(pcm, voice.rate), rate=8000, language="en")
    assert _wer(FIRST, heard.text) <= 0.15, heard.text
    assert heard.language == "en" and heard.ms > 0
    health = _health(speech)
    assert health["status"] == "ok" and health["rate"] == voice_rate
    assert health["models"] == [str(models.tiny_en_dir())]
    with pytest.raises(tts.TtsError, match="no Piper voice"):  # as PiperTts without one
        SpeechServerTts(speech, language="en", voice="/nowhere/x.onnx", length_scale=None)


def test_utterances_that_arrive_during_a_decode_are_decoded_together(
        speech: HostServer, spoken: dict[str, bytes]) -> None:
    stt = SpeechServerStt(speech, model="tiny.en")
    before = _health(speech)["stt"]
    results: dict[str, str] = {}

    def ask(text: str) -> None:
        results[text] = stt.transcribe(spoken[text], rate=8000, language="en").text

    blocker = threading.Thread(target=ask, args=(LONG,))
    blocker.start()
    _until(lambda: _health(speech)["stt"]["busy"] == 1)  # the long one is being decoded
    askers = [threading.Thread(target=ask, args=(text,)) for text in SENTENCES]
    for thread in askers:
        thread.start()
    for thread in [blocker, *askers]:
        thread.join(60)
    after = _health(speech)["stt"]
    assert after["batches"] - before["batches"] == 2, (before, after)  # 1, then 3 together
    assert after["sizes"].get("3", 0) == before["sizes"].get("3", 0) + 1, (before, after)
    for text in SENTENCES:
        assert _wer(text, results[text]) <= 0.2, (text, results[text])


def test_every_callers_first_clause_is_synthesized_before_later_clauses(
        speech: HostServer) -> None:
    voice = SpeechServerTts(speech, language="en", voice="", length_scale=None)
    finished: list[str] = []

    def say(name: str, clause: int, text: str) -> None:
        tts.clause_index.set(clause)  # as the TTS stage sets it for its thread
        voice.synthesize(text)
        finished.append(name)

    def start(name: str, clause: int, text: str) -> threading.Thread:
        thread = threading.Thread(target=contextvars.Context().run,
                                  args=(say, name, clause, text))
        thread.start()
        return thread

    threads = [start("busy", 3, LONG)]  # the one worker is busy with it ...
    _until(lambda: _health(speech)["tts"]["busy"] == 1)
    threads.append(start("later-a", 2, SENTENCES[1]))  # ... while these two wait,
    _until(lambda: _health(speech)["tts"]["queued"] == 1)
    threads.append(start("later-b", 2, SENTENCES[2]))  # in the order they came
    _until(lambda: _health(speech)["tts"]["queued"] == 2)
    threads.append(start("first", 0, SENTENCES[0]))  # a caller's first clause comes last
    _until(lambda: _health(speech)["tts"]["queued"] == 3)
    for thread in threads:
        thread.join(60)
    assert finished == ["busy", "first", "later-a", "later-b"]


def test_kill_9_mid_request_fails_that_request_and_the_next_is_answered(
        speech: HostServer, spoken: dict[str, bytes]) -> None:
    stt = SpeechServerStt(speech, model="tiny.en")
    voice = SpeechServerTts(speech, language="en", voice="", length_scale=None)
    state = speech.state()
    assert state is not None
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            stt.transcribe(spoken[LONG], rate=8000, language="en")
        except Exception as exc:  # what the STT stage would get: the turn apologises
            failures.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    _until(lambda: _health(speech)["stt"]["busy"] == 1)
    os.kill(state.pid, signal.SIGKILL)
    asking.join(30)
    assert len(failures) == 1 and isinstance(failures[0], httpx.TransportError), failures
    with pytest.raises(tts.TtsError, match="speech server"):  # a clause now: espeak apologises
        voice.synthesize(FIRST)
    started = time.monotonic()
    speech.endpoint(timeout=180)  # the supervisor restarts it and it warms up again
    restart_s = time.monotonic() - started
    restarted = speech.state()
    assert restarted is not None and restarted.pid != state.pid and restarted.restarts == 1
    assert restarted.url == state.url
    heard = stt.transcribe(spoken[FIRST], rate=8000, language="en")
    assert _wer(FIRST, heard.text) <= 0.15, heard.text
    assert len(voice.synthesize(FIRST)) > 2 * voice.rate
    log = speech.log_path.read_text(errors="replace")
    assert "speech.warm" in log
    print(f"\nspeech server back and warm {restart_s:.1f} s after kill -9")  # noqa: T201


@pytest.fixture(scope="module")
def assembled() -> None:
    for name in models.required():
        models.assemble(name)


def _kill_when_busy(run_dir: Path, done: threading.Event, *, stage: str) -> dict[str, Any]:
    """SIGKILL the speech server the moment it works for the call: ``stage`` "tts" while it
    synthesizes the reply, "stt" while it transcribes the caller.

    "stt" needs TOM_STT_PREEMPT_MS=0: a pre-emptive transcription started in a pause
    mid-sentence costs nothing when lost (the turn transcribes the whole utterance again,
    from the restarted server), so the turn would not apologise.
    """
    killed: dict[str, Any] = {}
    state = json.loads((run_dir / SPEECH_SPEC.state_name).read_text())
    while not done.is_set():
        try:
            health = httpx.get(f"{state['url']}/health", timeout=2).json()
        except httpx.HTTPError:
            health = {}
        if health.get(stage, {}).get("busy"):
            os.kill(int(state["pid"]), signal.SIGKILL)
            killed.update(pid=int(state["pid"]), at=time.monotonic())
            return killed
        done.wait(0.01)
    return killed


# "tts": killed while the reply's first clause is synthesized (the caller has heard
# nothing yet); "stt": while the caller's finished question is transcribed. Either way
# espeak-ng, in the web process, speaks the apology.
@pytest.mark.parametrize("stage", ["tts", "stt"])
async def test_kill_9_of_the_speech_server_mid_turn_costs_one_turn_not_the_call(
        assembled: None, live_server_process: Any, tmp_path: Path, stage: str) -> None:
    data = tmp_path / "data"  # its own host lock, so its own speech server
    data.mkdir()
    (data / "models").symlink_to(models.models_dir())
    log = tmp_path / "daphne.log"
    # TOM_INFERENCE=process (the default) puts Whisper and Piper in the speech server;
    # the LLM stays in process here (llama-server's kill -9: test_inference_process.py).
    live: LiveServer = live_server_process(
        log=log, TOM_SESSION_BACKEND="local", TOM_INFERENCE="process",
        TOM_LLM_BACKEND="llamacpp", TOM_STT_MODEL="tiny.en", TOM_STT_MODELS="",
        TOM_STT_PREEMPT_MS="250" if stage == "tts" else "0",
        TOM_DATA_DIR=str(data), TOM_LOG_LEVEL="INFO", TOM_PROVIDER_TIMEOUT_S="30")
    run_dir = data / "run"
    before = json.loads((run_dir / SPEECH_SPEC.state_name).read_text())  # the warm-up's
    voice = await sync_to_async(tts.PiperTts)(models.piper_voice_path())
    first = _telephone(await sync_to_async(voice.synthesize)(FIRST), voice.rate)
    second = _telephone(await sync_to_async(voice.synthesize)(SECOND), voice.rate)
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=live.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"},
                        rate=8000, segments=[Segment(first, pause_s=12.0),
                                             Segment(second, pause_s=12.0)], wait_s=40)
    done = threading.Event()
    killer = asyncio.create_task(asyncio.to_thread(_kill_when_busy, run_dir, done, stage=stage))
    try:
        report = await client.run()
    finally:
        done.set()
    killed = await killer
    assert killed.get("pid") == before["pid"], "the server never worked on the first turn"

    assert report.close_code == 1000 and report.errors == [], report.as_dict()
    assert all(latency is not None for latency in report.turn_latencies()), report.as_dict()
    heard = report.heard_pcm(8000)
    cut = int(report.segment_starts[1] * 8000) * 2
    said_first = await sync_to_async(_transcribe_here)(heard[:cut])
    assert {"moment", "again"} <= set(_words(said_first)), said_first  # espeak's apology

    call = await database_sync_to_async(Call.objects.get)(uuid=call_uuid)
    turns = await database_sync_to_async(lambda: list(call.turns.order_by("index")))()
    assert [t.index for t in turns][:2] == [0, 1]
    assert turns[0].agent_text == APOLOGY_EN  # the call's record says what happened
    assert turns[1].agent_text and turns[1].agent_text != APOLOGY_EN
    assert turns[1].caller_text and _wer(SECOND, turns[1].caller_text) <= 0.2

    after = json.loads((run_dir / SPEECH_SPEC.state_name).read_text())
    assert after["url"] == before["url"] and after["pid"] != before["pid"]
    assert after["restarts"] == 1 and after["owner_pid"] == before["owner_pid"]
    text = log.read_text(errors="replace")
    assert "inference.server_died" in text and "killed by SIGKILL" in text, text[-3000:]


def _transcribe_here(pcm: bytes) -> str:
    from voice.stt import WhisperStt

    # Whisper base, as the other live tests hear the apology (tiny.en drops espeak's "Sorry").
    return WhisperStt(models.stt_model_dir("base")).transcribe(pcm, rate=8000,
                                                              language="en").text
