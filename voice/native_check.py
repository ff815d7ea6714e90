"""Prove that TOM's compiled dependencies run on this CPU, by running each once in a child.

A native library built for another CPU (llama.cpp's default ``-march=native`` on a machine
whose CPU reports AMX) does not fail at import: it dies with SIGILL at the first prompt
long enough to reach the batched matrix multiply, taking the web process and every call
on it down. ``tom_models --verify`` (run by deploy/local/run.sh and test.sh) therefore
runs, in a child process so that the check itself survives: Piper (onnxruntime and
piper-phonemize) speaks a sentence, both VADs (webrtcvad, Silero on onnxruntime) judge it,
Whisper (CTranslate2) transcribes it, and llama.cpp completes a prompt of several hundred
tokens; the llama-server binary (voice.inference) shows its version and, when it is the
configured backend, completes the same prompt. A child that dies is reported in words: the
signal and what it usually means.

The child is ``python -m voice.native_check NAME...``; it prints one line per step,
prefixed with ``MARK``, so the parent knows which step was running when it died.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomsite.runner import exit_reason

CHECKS = ("tts", "vad", "stt", "llm", "llm_server")
MARK = "tom-native-check:"
# The AMX crash came from the batched matmul, reached only by prompts of more than a few
# tokens; 400+ tokens fill most of one n_batch (512) and run the batched path for real.
MIN_PROMPT_TOKENS = 400
SENTENCE = "Hello, this is TOM checking that speech works on this computer."


REBUILD_HINTS = {
    "llm": "reinstall llama-cpp-python with deploy/local/_venv.sh's portable flags "
           "(GGML_NATIVE=OFF, no AVX-512, no AMX): rm -f .venv/.tom-llama-* and run "
           "bash deploy/local/run.sh again; if that build crashes too, also remove "
           "~/.cache/tom/llama-* so that it is compiled afresh",
    "llm_server": "rebuild llama-server with deploy/local/_llama_server.sh's portable flags: "
                  "rm -f .venv/.tom-llama-server-* .venv/bin/llama-server and "
                  "~/.cache/tom/llama-server-*, then run bash deploy/local/run.sh again",
    "stt": "CTranslate2 comes as a prebuilt wheel that picks its CPU code at run time: "
           "reinstall it (.venv/bin/pip install --force-reinstall --no-cache-dir ctranslate2)",
    "tts": "reinstall onnxruntime and piper-tts (.venv/bin/pip install --force-reinstall "
           "--no-cache-dir onnxruntime piper-tts)",
    "vad": "reinstall webrtcvad-wheels and onnxruntime (.venv/bin/pip install "
           "--force-reinstall --no-cache-dir webrtcvad-wheels onnxruntime)",
}


@dataclass
class StepResult:
    name: str
    state: str  # "ok", "failed", "skipped", "crashed" or "not run"
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class NativeReport:
    steps: list[StepResult]
    returncode: int | None  # None: the child ran past the timeout and was killed
    seconds: float
    output_tail: str = ""  # the child's stderr tail, shown when it died

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and all(s.state in ("ok", "skipped") for s in self.steps)

    def failures(self) -> list[str]:
        """One paragraph per failed step, in words, with what to do about it."""
        lines = []
        for step in self.steps:
            if step.state in ("failed", "crashed"):
                hint = REBUILD_HINTS.get(step.name, "")
                lines.append(f"{step.name}: {step.detail}" + (f"\n  fix: {hint}" if hint else ""))
        if not lines and not self.ok:
            lines.append(f"the check process died before it reported any step: {self._death()}")
        return lines

    def _death(self) -> str:
        if self.returncode is None:
            return "it did not finish in time and was stopped"
        return exit_reason(self.returncode)


def native_checks_run(*, names: Sequence[str] = CHECKS, timeout_s: float = 300.0,
                      python: str = sys.executable, env: dict[str, str] | None = None
                      ) -> NativeReport:
    """Run the checks ``names`` in one child process (``python``) and report each step.

    The step running when the child died is marked ``crashed`` with the signal in words;
    steps after it are ``not run``. Never raises for a failed check: the report says it.
    """
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown native check(s): {', '.join(unknown)}")
    started = time.monotonic()
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    repo = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo, child_env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run(  # noqa: S603  (our own interpreter and module)
            [python, "-m", "voice.native_check", *names], capture_output=True, cwd=repo,
            env=child_env, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
        stdout, stderr, returncode = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, returncode = exc.stdout or b"", exc.stderr or b"", None
    steps = _steps_from(stdout.decode("utf-8", "replace"), names)
    tail = stderr.decode("utf-8", "replace")[-2000:]
    for step in steps:
        if step.state == "running":
            step.state = "crashed"
            step.detail = (
                f"the check process did not finish the {step.name} check within "
                f"{timeout_s:.0f} s and was stopped" if returncode is None else
                f"the check process died while running the {step.name} check: "
                + exit_reason(returncode))
    return NativeReport(steps=steps, returncode=returncode, output_tail=tail,
                        seconds=round(time.monotonic() - started, 2))


def _steps_from(stdout: str, names: Sequence[str]) -> list[StepResult]:
    steps = {name: StepResult(name, "not run") for name in names}
    for line in stdout.splitlines():
        if not line.startswith(MARK):
            continue
        state, _, rest = line.removeprefix(MARK).partition(" ")
        name, _, payload = rest.partition(" ")
        if name not in steps:
            continue
        step = steps[name]
        if state == "begin":
            step.state = "running"
        elif state == "ok":
            step.state, step.values = "ok", json.loads(payload or "{}")
        elif state in ("failed", "skipped"):
            step.state, step.detail = state, payload
    return list(steps.values())


# --- the child ----------------------------------------------------------------------


def _say(state: str, name: str, payload: str = "") -> None:
    sys.stdout.write(f"{MARK}{state} {name} {payload}".rstrip() + "\n")
    sys.stdout.flush()


def _check_tts(audio: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings

    from voice import tts

    engine = tts.get_tts("en")
    pcm = engine.synthesize(SENTENCE)
    if len(pcm) < engine.rate:  # under half a second of speech for a whole sentence
        raise RuntimeError(f"{type(engine).__name__} produced {len(pcm)} bytes of audio")
    audio.update(pcm=pcm, rate=engine.rate)
    return {"engine": settings.TOM_TTS_ENGINE, "audio_s": round(len(pcm) / 2 / engine.rate, 2)}


def _speech(audio: dict[str, Any], rate: int) -> bytes:
    from voice.dsp.resample import resample
    from voice.signals import voiced

    if "pcm" not in audio:  # the TTS step failed in Python: judge a buzz instead
        return voiced(rate, 1.5)
    return resample(audio["pcm"], audio["rate"], rate)


def _check_vad(audio: dict[str, Any]) -> dict[str, Any]:
    from voice.dsp.framing import frame_bytes
    from voice.vad import SileroClassifier, WebrtcClassifier

    pcm = _speech(audio, 16000)
    size = frame_bytes(16000)
    frames = [pcm[i:i + size] for i in range(0, len(pcm) - size + 1, size)]
    counts = {}
    for label, classifier in (("webrtc", WebrtcClassifier(rate=16000, aggressiveness=2)),
                              ("silero", SileroClassifier(rate=16000))):
        counts[label] = sum(classifier.is_speech(frame) for frame in frames)
        if counts[label] == 0:
            raise RuntimeError(f"the {label} VAD heard no speech in {len(frames)} frames")
    return {"frames": len(frames), "speech_frames": counts}


def _check_stt(audio: dict[str, Any]) -> dict[str, Any]:
    from voice import stt

    result = stt.get_stt().transcribe(_speech(audio, 16000), rate=16000, language="en")
    if "pcm" in audio and not result.text.strip():
        raise RuntimeError("Whisper heard nothing in a spoken sentence")
    return {"text": result.text, "ms": result.ms}


def long_prompt() -> str:
    """A deterministic prompt of several hundred tokens, like a system prompt with tools."""
    colours, things = ("red", "blue", "green", "black"), ("valve", "gasket", "hose", "filter")
    lines = [f"Part {n}: a {colours[n % 4]} {things[n // 4 % 4]}, {n * 7 % 50} in stock, "
             f"shelf {n % 9}." for n in range(1, 27)]
    return ("You are TOM, the phone agent of a parts shop. The catalogue:\n"
            + "\n".join(lines) + "\nQuestion: how many blue valves are in stock?\nAnswer:")


def _check_llm(audio: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings

    from voice import backends
    from voice.llm import LlamaCppLlm

    # Any spelling that names llama.cpp (alias or dotted path) runs the local model.
    if not issubclass(backends.backend_class("llm"), LlamaCppLlm):
        raise _Skip(f"TOM_LLM_BACKEND={settings.TOM_LLM_BACKEND}: no local llama.cpp model")
    from llama_cpp import Llama

    from voice import models

    path = models.llm_model_path()
    if not path.exists():
        raise RuntimeError(f"no GGUF model at {path}: run manage.py tom_models")
    llm = Llama(model_path=str(path), n_ctx=max(1024, settings.TOM_LLM_CONTEXT_TOKENS),
                n_threads=settings.TOM_LLM_THREADS or os.cpu_count() or 2, verbose=False)
    prompt = long_prompt()
    tokens = len(llm.tokenize(prompt.encode()))
    if tokens < MIN_PROMPT_TOKENS:
        raise RuntimeError(f"the check prompt has only {tokens} tokens")
    started = time.perf_counter()
    out: Any = llm.create_completion(prompt, max_tokens=8, temperature=0.0)
    usage = out["usage"]
    if usage["completion_tokens"] < 1:
        raise RuntimeError("llama.cpp generated no token")
    llm.close()
    return {"prompt_tokens": usage["prompt_tokens"], "completion": out["choices"][0]["text"],
            "seconds": round(time.perf_counter() - started, 2)}


def _check_llm_server(audio: dict[str, Any]) -> dict[str, Any]:
    from voice import backends
    from voice.inference import server
    from voice.inference.backend import LlamaServerLlm

    binary = server.server_binary()
    served = issubclass(backends.backend_class("llm"), LlamaServerLlm)
    if binary is None:
        if served:
            raise RuntimeError("TOM_LLM_BACKEND=llamacpp-server but no llama-server binary")
        raise _Skip("no llama-server binary (built with the models extra)")
    # Its own child: a binary built for another CPU dies here with the signal in words.
    done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=60,  # noqa: S603
                          check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} --version {exit_reason(done.returncode)}")
    version = (done.stdout + done.stderr).decode("utf-8", "replace").strip().splitlines()
    values = {"binary": str(binary), "version": version[0] if version else ""}
    if served:  # the backend in use: also through the batched matmul, as the llm step does
        values.update(_served_long_prompt(binary))
    return values


def _served_long_prompt(binary: Path) -> dict[str, Any]:
    import httpx

    from voice import models
    from voice.inference import server

    if not models.llm_model_path().exists():
        raise RuntimeError(f"no GGUF model at {models.llm_model_path()}: run manage.py tom_models")
    port = server.free_port()
    url = f"http://127.0.0.1:{port}"
    child = subprocess.Popen(server.server_argv(binary=binary, port=port, parallel=1),  # noqa: S603
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not server.health_ok(url):  # a child process: /health is its only word
            if child.poll() is not None:
                raise RuntimeError(f"llama-server {exit_reason(child.returncode)}")
            if time.monotonic() > deadline:
                raise RuntimeError("llama-server did not load the model within 120 s")
            time.sleep(0.2)
        started = time.perf_counter()
        try:
            out = httpx.post(f"{url}/completion", timeout=120, json={
                "prompt": long_prompt(), "n_predict": 8, "temperature": 0.0}).json()
        except httpx.HTTPError as exc:
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"llama-server did not answer a long prompt: {exc}") from None
            raise RuntimeError("llama-server died on a long prompt: "
                               + exit_reason(child.returncode)) from None
        if int(out.get("tokens_evaluated") or 0) < MIN_PROMPT_TOKENS:
            raise RuntimeError(f"llama-server evaluated only {out.get('tokens_evaluated')} "
                               "prompt tokens")
        return {"served_prompt_tokens": out["tokens_evaluated"],
                "served_seconds": round(time.perf_counter() - started, 2)}
    finally:
        child.terminate()
        child.wait(10)


class _Skip(Exception):
    """The step does not apply to this configuration (a remote LLM, say)."""


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "tts": _check_tts, "vad": _check_vad, "stt": _check_stt, "llm": _check_llm,
    "llm_server": _check_llm_server}


def main(names: Sequence[str]) -> int:
    import django

    django.setup()
    audio: dict[str, Any] = {}
    failed = False
    for name in names:
        _say("begin", name)
        try:
            values = STEPS[name](audio)
        except _Skip as exc:
            _say("skipped", name, str(exc))
        except Exception as exc:  # a Python-level failure is reported; the next step runs
            traceback.print_exc()
            _say("failed", name, f"{type(exc).__name__}: {exc}".replace("\n", " "))
            failed = True
        else:
            _say("ok", name, json.dumps(values))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or CHECKS))
