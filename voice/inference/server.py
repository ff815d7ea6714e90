"""llama-server for TOM's settings: where the binary is, how it is started, its HTTP.

One place builds the command line, whoever starts it: the web process's supervisor
(voice.inference.supervisor), the systemd unit (``python -m voice.inference serve``),
the install check (voice.native_check) and the benchmark (bench/inference_overhead.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

from tomsite.runner import http_ok
from voice import models
from voice.inference.spec import ServerSpec

# The name llama-server answers to (``--alias``): requests name it as their "model".
MODEL_ALIAS = "tom-llm"
# The prompt cache that lets a slot reuse another slot's evaluated system prompt lives in
# host memory; llama.cpp's default allows 8 GiB. A 0.5B model's 2k-token prompt takes
# ~25 MB of KV, so this holds a few dozen and bounds the server's memory on a small host.
CACHE_RAM_MIB = 512
HEALTH_TIMEOUT_S = 2.0


class InferenceUnavailable(RuntimeError):
    """The inference server cannot answer now (not built, not ready, or dying); says why."""


def server_binary() -> Path | None:
    """The llama-server to run: ``TOM_LLM_SERVER_BIN``, else the one the install put beside
    this interpreter (.venv/bin), else one on PATH; None when there is none."""
    configured = str(settings.TOM_LLM_SERVER_BIN or "")
    candidates = [Path(configured)] if configured else [
        Path(sys.executable).parent / "llama-server",  # not resolved: the venv's bin/
        *([Path(found)] if (found := shutil.which("llama-server")) else [])]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_argv(*, binary: Path, port: int, host: str = "127.0.0.1",
                parallel: int | None = None) -> list[str]:
    """llama-server's command line for the configured model, slots and threads.

    ``--ctx-size`` is the whole KV cache, which llama-server splits evenly between the
    slots: each conversation keeps the ``TOM_LLM_CONTEXT_TOKENS`` it has in-process.
    ``--jinja`` renders the GGUF's own chat template, tools included, and returns the
    model's tool calls as structured ``tool_calls``.
    """
    slots = max(1, parallel or settings.TOM_LLM_PARALLEL)
    threads = settings.TOM_LLM_THREADS or os.cpu_count() or 2
    # llama-cpp-python's -1 means every layer; llama-server's -1 means "fit what it can".
    gpu_layers = "all" if settings.TOM_LLM_GPU_LAYERS < 0 else str(settings.TOM_LLM_GPU_LAYERS)
    return [str(binary), "--model", str(models.llm_model_path()), "--alias", MODEL_ALIAS,
            "--host", host, "--port", str(port), "--parallel", str(slots),
            "--ctx-size", str(slots * settings.TOM_LLM_CONTEXT_TOKENS),
            "--threads", str(threads), "--n-gpu-layers", gpu_layers,
            "--cache-ram", str(CACHE_RAM_MIB), "--jinja", "--no-webui"]


def health_ok(url: str) -> bool:
    """Whether the server at ``url`` has its model loaded (``GET /health`` is 200; 503
    while it loads). Through urllib: asked every 100 ms while it starts, it should not
    put a line in the log each time as httpx's client does."""
    return http_ok(f"{url}/health")


def warm_up(url: str, *, timeout_s: float) -> None:
    """Evaluate the system prompt once, as in-process llama.cpp does at load: the server's
    prompt cache then spares the first turn after a (re)start that work."""
    from voice.llm import system_prompt

    language = str(settings.TOM_LANGUAGE or "en")
    body = {"model": MODEL_ALIAS, "max_tokens": 1, "messages": [
        {"role": "system", "content": system_prompt(language=language)},
        {"role": "user", "content": "Hallo" if language.startswith("de") else "Hello"}]}
    httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout_s).raise_for_status()


def _llm_argv(port: int) -> list[str]:
    binary = server_binary()
    if binary is None:
        raise InferenceUnavailable(
            "no llama-server binary: run deploy/local/run.sh (it builds one into "
            ".venv/bin) or set TOM_LLM_SERVER_BIN")
    return server_argv(binary=binary, port=port)


def _llm_warm_up(url: str, timeout_s: float) -> None:
    warm_up(url, timeout_s=timeout_s)


# What the web process supervises for TOM_LLM_BACKEND=llamacpp-server (voice.inference.host).
LLM_SPEC = ServerSpec(name="llama-server", component="llm", lock_name="llm-server.lock",
                      state_name="llm-server.json", argv=_llm_argv,
                      health=health_ok, warm_up=_llm_warm_up)


def slots(url: str) -> list[dict[str, Any]]:
    """The server's slots (``GET /slots``): which are processing a request now."""
    response = httpx.get(f"{url}/slots", timeout=HEALTH_TIMEOUT_S)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found
