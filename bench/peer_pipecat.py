"""Pipecat as a peer: caller WAVs through a Pipecat pipeline with TOM's models.

Optional, and never a dependency of TOM: Pipecat lives in its own virtual environment,
``.venv-pipecat/`` at the repository root, which this script creates on first run
(``python3 -m venv .venv-pipecat && .venv-pipecat/bin/pip install PIPECAT``, ``PIPECAT``
below) and then re-runs itself in. TOM's own venv is asked only for the model paths and
the system prompt, so both sides use the same files: faster-whisper base int8 on CPU,
Qwen2.5-Coder 0.5B Q4_K_M behind TOM's ``llama-server`` (Pipecat's OpenAI service talks
to it), Piper ``en_US-joe-medium``, Silero VAD.

Each WAV is played into a fresh pipeline in 20 ms frames paced in real time, then
silence. The figure is the caller's last speech sample (the last sample above
``SPEECH_FLOOR``) to the first agent audio frame the TTS service pushes (in process: no
transport, network or jitter buffer on either side). Frame k is fed when its last sample
would have been captured, so up to 20 ms of packetisation is included, as on a phone.
llama-server gets TOM's thread count (``TOM_LLM_THREADS``, default one per CPU); on a
loaded 2-CPU machine ``TOM_LLM_THREADS=1`` decodes ~10x faster than 2 spinning threads.

    python3 bench/peer_pipecat.py /tmp/peer-wavs/*.wav [--stop-secs 0.5] [--beam 1]
    python3 bench/peer_pipecat.py --wav-dir /tmp/peer-wavs --smart-turn --json out.json
"""

# ruff: noqa: E402  (Pipecat is imported after the check that re-runs this file in its venv)

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-pipecat"
PIPECAT = "pipecat-ai[silero,whisper,piper]==1.14.0"
FRAME_S = 0.02
IN_RATE, OUT_RATE = 16000, 8000  # Whisper and Silero want 16 kHz; the phone leg is 8 kHz
WAIT_S = 30.0  # no agent audio this long after the caller stopped: a miss
TOM_SNIPPET = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
django.setup()
from django.conf import settings
from voice import llm, models
models.assemble("whisper-base")
if not settings.TOM_LLM_MODEL_PATH:
    models.assemble("qwen2.5-0.5b")
print(json.dumps({"whisper": str(models.stt_model_dir("base")),
                  "gguf": str(models.llm_model_path()),
                  "piper": str(models.piper_voice_path()),
                  "prompt": llm.system_prompt(language="en"),
                  "max_tokens": settings.TOM_LLM_MAX_TOKENS,
                  "temperature": settings.TOM_LLM_TEMPERATURE,
                  "ctx": settings.TOM_LLM_CONTEXT_TOKENS,
                  "threads": settings.TOM_LLM_THREADS or os.cpu_count() or 2}))
"""


def reexec_in_venv() -> None:
    """Create ``.venv-pipecat`` if needed and replace this process with the script in it."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():  # already there: the install failed
        raise SystemExit(f"{VENV} lacks Pipecat: {python} -m pip install '{PIPECAT}'")
    if not python.exists():
        print(f"creating {VENV.name} with {PIPECAT}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PIPECAT], check=True)
    os.execv(python, [str(python), __file__, *sys.argv[1:]])  # noqa: S606 (our own venv)


if importlib.util.find_spec("pipecat") is None:
    if __name__ != "__main__":
        raise ImportError(f"bench/peer_pipecat.py needs Pipecat: run it, it creates {VENV}")
    reexec_in_venv()

import numpy as np
import soxr
from faster_whisper import WhisperModel
from loguru import logger
from pipecat import __version__ as PIPECAT_VERSION
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.tts_service import TTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner
from piper import PiperVoice


@dataclass
class Shared:
    """What every pipeline reuses, loaded once: models stay warm between WAVs."""

    whisper: Any
    piper: Any
    smart_turn: Any
    tom: dict[str, Any]
    llm_url: str
    opts: argparse.Namespace


@dataclass
class Turn:
    name: str
    speech_end: float = math.inf  # perf_counter time of the caller's last speech sample
    heard_at: float | None = None  # the last transcript
    text_at: float | None = None  # the reply's first LLM text
    first_audio: float | None = None
    heard: str = ""
    reply: str = ""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    replied: asyncio.Event = field(default_factory=asyncio.Event)

    def since_speech(self, at: float | None) -> float | None:
        """Milliseconds from the caller's last speech sample to ``at``."""
        return None if at is None else round((at - self.speech_end) * 1e3, 1)

    @property
    def ms(self) -> float | None:
        return self.since_speech(self.first_audio)


class BeamWhisper:
    """The shared WhisperModel, decoding with TOM's beam (Pipecat leaves faster-whisper's 5)."""

    def __init__(self, model: Any, beam: int) -> None:
        self.model, self.beam = model, beam
        self.supported_languages = model.supported_languages

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        return self.model.transcribe(audio, beam_size=self.beam, **kwargs)


class SharedWhisperSTT(WhisperSTTService):
    """Pipecat's Whisper service on the model loaded once, not once per pipeline."""

    def __init__(self, *, model: BeamWhisper, **kwargs: Any) -> None:
        self._shared = model
        super().__init__(**kwargs)

    def _load(self) -> None:
        self._model = self._shared


class SharedPiperTTS(PiperTTSService):
    """Pipecat's in-process Piper service on a voice loaded once; its own ``__init__``
    looks for ``<voice>.onnx`` in a download folder and would load it per pipeline."""

    def __init__(self, *, voice: Any, **kwargs: Any) -> None:
        TTSService.__init__(self, push_start_frame=True, push_stop_frames=True,
                            settings=self.Settings(model=None, voice="en_US-joe-medium",
                                                   language=None), **kwargs)
        self._voice = voice


class Probe(FrameProcessor):
    """Notes what passes one point of the pipeline and passes everything on."""

    def __init__(self, turn: Turn) -> None:
        super().__init__()
        self.turn = turn

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now, turn = time.perf_counter(), self.turn
        if isinstance(frame, StartFrame):
            turn.started.set()
        elif isinstance(frame, TranscriptionFrame):
            turn.heard, turn.heard_at = turn.heard + frame.text, now
        elif isinstance(frame, LLMTextFrame):
            if not turn.reply and turn.first_audio is None:
                turn.text_at = now
            turn.reply += frame.text
        elif isinstance(frame, LLMFullResponseEndFrame) and turn.first_audio is not None:
            turn.replied.set()
        elif isinstance(frame, TTSAudioRawFrame) and turn.first_audio is None \
                and now >= turn.speech_end:
            turn.first_audio = now
        await self.push_frame(frame, direction)


def read_caller(path: Path) -> tuple[bytes, float]:
    """The WAV as 16 kHz mono PCM, and where its last speech sample ends (seconds)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SystemExit(f"{path}: 16-bit PCM WAV expected")
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    samples = np.ascontiguousarray(samples.reshape(-1, channels)[:, 0])
    # The same "end of speech" as bench/voice_latency.py measures TOM by.
    sys.path.insert(0, str(REPO / "bench"))
    from _speech_end import last_speech_s

    speech_end_s = last_speech_s(samples.tobytes(), rate)
    if not speech_end_s:
        raise SystemExit(f"{path}: no speech above the floor")
    pcm = samples if rate == IN_RATE else soxr.resample(samples, rate, IN_RATE)
    return np.asarray(pcm, dtype=np.int16).tobytes(), speech_end_s


def pipeline_for(turn: Turn, shared: Shared) -> Pipeline:
    opts, tom = shared.opts, shared.tom
    stop: Any = (TurnAnalyzerUserTurnStopStrategy(turn_analyzer=shared.smart_turn)
                 if opts.smart_turn else
                 SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=opts.speech_timeout))
    stt = SharedWhisperSTT(model=shared.whisper, device="cpu", compute_type="int8",
                           settings=WhisperSTTService.Settings(model=tom["whisper"],
                                                               language=Language.EN))
    llm = OpenAILLMService(api_key="none", base_url=shared.llm_url,
                           settings=OpenAILLMService.Settings(
                               model="tom", system_instruction=tom["prompt"],
                               max_tokens=tom["max_tokens"], temperature=tom["temperature"]))
    user, assistant = LLMContextAggregatorPair(LLMContext(), user_params=LLMUserAggregatorParams(
        vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=opts.stop_secs)),
        user_turn_strategies=UserTurnStrategies(stop=[stop])))
    return Pipeline([stt, Probe(turn), user, llm, Probe(turn),
                     SharedPiperTTS(voice=shared.piper), Probe(turn), assistant])


async def feed(worker: Any, turn: Turn, pcm: bytes, speech_end_s: float) -> None:
    """Play the caller in real time, then silence until the reply or ``WAIT_S``."""
    step = int(IN_RATE * FRAME_S) * 2
    silence = bytes(step)
    start = time.perf_counter()
    turn.speech_end = start + speech_end_s
    k = 0
    while not turn.replied.is_set() and time.perf_counter() < turn.speech_end + WAIT_S:
        chunk = pcm[k * step:(k + 1) * step] or silence
        # Frame k leaves when its last sample has been "spoken": the phone's packetisation.
        await asyncio.sleep(max(0.0, start + (k + 1) * FRAME_S - time.perf_counter()))
        await worker.queue_frame(InputAudioRawFrame(
            audio=chunk.ljust(step, b"\0"), sample_rate=IN_RATE, num_channels=1))
        k += 1
        if turn.first_audio is not None and time.perf_counter() > turn.first_audio + 3:
            break  # the reply is speaking; its end-of-response frame is not needed


async def run_one(path: Path, shared: Shared) -> Turn:
    pcm, speech_end_s = read_caller(path)
    turn = Turn(name=path.name)
    worker = PipelineWorker(pipeline_for(turn, shared), enable_rtvi=False,
                            idle_timeout_secs=None, params=PipelineParams(
                                audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE))
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(turn.started.wait(), 30)
        await feed(worker, turn, pcm, speech_end_s)
    finally:
        await worker.cancel()
        await running
    return turn


def tom_setup() -> dict[str, Any]:
    """Model paths and the system prompt from TOM's own venv and settings."""
    out = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", TOM_SNIPPET],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    tom: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return tom


def start_llama_server(tom: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    """TOM's llama-server binary with the flags TOM starts it with, one slot, CPU only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = REPO / ".venv" / "bin" / "llama-server"
    server = subprocess.Popen(
        [str(binary), "--model", tom["gguf"], "--alias", "tom", "--host", "127.0.0.1",
         "--port", str(port), "--parallel", "1", "--ctx-size", str(tom["ctx"]),
         "--threads", str(tom["threads"]), "--n-gpu-layers", "0", "--jinja",
         "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"llama-server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return server, f"http://127.0.0.1:{port}/v1"
        except OSError:
            pass
        time.sleep(0.25)  # llama-server has no readiness signal but its health route
    server.terminate()
    raise SystemExit("llama-server did not become ready in 120 s")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: with three runs p95 is the slowest, not an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def report(turns: list[Turn], opts: argparse.Namespace, version: str) -> dict[str, Any]:
    endpoint = (f"Smart Turn v3 + Silero stop {opts.stop_secs:g} s" if opts.smart_turn else
                f"Silero stop {opts.stop_secs:g} s + speech timeout {opts.speech_timeout:g} s")
    load = os.getloadavg()[1]  # a shared machine: the figures mean little when this is high
    print(f"\nPipecat {version}, {endpoint}, Whisper base int8 beam {opts.beam}, "
          f"Qwen2.5-Coder 0.5B Q4_K_M (llama-server, {opts.llm_threads} threads), "
          "Piper en_US-joe-medium; "
          f"5-min load average {load:.1f} on {os.cpu_count()} CPUs\n")
    print("| wav | last speech → first agent audio (ms) | → transcript | → first LLM text "
          "| Pipecat heard | reply begins |")
    print("|---|---:|---:|---:|---|---|")
    for turn in turns:
        ms = [turn.since_speech(at) for at in (turn.first_audio, turn.heard_at, turn.text_at)]
        cells = " | ".join("-" if v is None else f"{v:.0f}" for v in ms)
        reply = " ".join(turn.reply.split()[:8])
        print(f"| {turn.name} | {cells} | {turn.heard.strip()} | {reply} |")
    times = [t.ms for t in turns if t.ms is not None]
    summary: dict[str, Any] = {"pipecat": version, "endpointing": endpoint,
                               "beam": opts.beam, "load": round(load, 2), "n": len(times),
                               "missed": len(turns) - len(times)}
    if times:
        summary |= {"p50_ms": round(percentile(times, 0.5)),
                    "p95_ms": round(percentile(times, 0.95))}
        print(f"\nn={len(times)}  p50 {summary['p50_ms']} ms  p95 {summary['p95_ms']} ms"
              f"  missed {summary['missed']}")
    summary["runs"] = [{"wav": t.name, "ms": t.ms, "transcript_ms": t.since_speech(t.heard_at),
                        "llm_text_ms": t.since_speech(t.text_at), "heard": t.heard.strip(),
                        "reply": t.reply.strip()} for t in turns]
    return summary


async def bench(wavs: list[Path], shared: Shared) -> list[Turn]:
    warm = await run_one(wavs[0], shared)
    print(f"warm-up (not counted): {warm.name} {warm.ms or math.nan:.0f} ms", file=sys.stderr)
    return [await run_one(path, shared) for path in wavs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wavs", nargs="*", type=Path, help="caller WAVs (16-bit mono)")
    parser.add_argument("--wav-dir", type=Path, help="also every *.wav in this folder")
    parser.add_argument("--json", help="write the runs and p50/p95 here")
    parser.add_argument("--stop-secs", type=float, help="Silero stop_secs "
                        "(default 0.5, or 0.2 with --smart-turn)")
    parser.add_argument("--speech-timeout", type=float, default=0.0,
                        help="Pipecat's user_speech_timeout after the VAD stop, plain "
                             "endpointing only (Pipecat's default 0.6; 0: the VAD alone)")
    parser.add_argument("--beam", type=int, choices=(1, 5), default=1)
    parser.add_argument("--smart-turn", action="store_true",
                        help="end turns with Pipecat's default Smart Turn v3 analyzer")
    parser.add_argument("-v", "--verbose", action="store_true", help="Pipecat's debug log")
    opts = parser.parse_args()
    if opts.stop_secs is None:
        opts.stop_secs = 0.2 if opts.smart_turn else 0.5
    wavs = list(opts.wavs) + (sorted(opts.wav_dir.glob("*.wav")) if opts.wav_dir else [])
    if not wavs:
        parser.error("no WAVs given")
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if opts.verbose else "ERROR")
    tom = tom_setup()
    opts.llm_threads = tom["threads"]
    server, url = start_llama_server(tom)
    try:
        shared = Shared(
            whisper=BeamWhisper(WhisperModel(tom["whisper"], device="cpu",
                                             compute_type="int8"), opts.beam),
            piper=PiperVoice.load(tom["piper"]),
            smart_turn=LocalSmartTurnAnalyzerV3() if opts.smart_turn else None,
            tom=tom, llm_url=url, opts=opts)
        turns = asyncio.run(bench(wavs, shared))
    finally:
        server.terminate()
        server.wait(10)
    summary = report(turns, opts, PIPECAT_VERSION)
    if opts.json:
        Path(opts.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
