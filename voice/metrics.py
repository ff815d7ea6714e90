"""Prometheus metrics of the telephony bridge (names shared with deploy/prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter("tom_telephony_calls", "Fork connections that started a call.")
CALLS_FAILED = Counter(
    "tom_telephony_calls_failed", "Calls that ended in failure, by reason.", ["reason"]
)
CALLS_ENDED = Counter("tom_telephony_calls_ended", "Calls that ended, by reason.", ["reason"])
HANDSHAKES_REFUSED = Counter(
    "tom_telephony_handshakes_refused", "Fork handshakes refused (HTTP 403), by reason.",
    ["reason"],
)
ACTIVE_CALLS = Gauge("tom_telephony_active_calls_total", "Calls in progress in this process.")
CALLS_BUSY = Counter("tom_calls_busy", "Callers over capacity (TOM_CAPACITY_CALLS) who heard "
                     "the busy message instead of being served.")
CAPACITY_CALLS = Gauge("tom_capacity_calls", "Calls this process serves at once before callers "
                       "hear the busy message (0: no limit but the hard cap), by source: "
                       "configured, measured at start, or default.", ["source"])
WARM_UP_SECONDS = Gauge("tom_warm_up_seconds", "Seconds this web process took to load its "
                        "models and run its warm-up turn before it reported ready.")
CALL_DURATION = Histogram(
    "tom_telephony_call_duration_seconds", "Duration of ended calls.",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 3600),
)
BARGE_IN_LATENCY = Histogram(
    "tom_telephony_barge_in_latency_seconds",
    "Caller speech onset to killAudio sent.",
    buckets=(0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 1.0),
)
OUTBOUND_UNDERRUNS = Counter(
    "tom_telephony_outbound_underruns", "Frames of silence sent while agent audio was late."
)
OUTBOUND_OVERRUNS = Counter(
    "tom_telephony_outbound_overruns", "Agent audio frames dropped because the buffer was full."
)
FRAMES_RECEIVED = Counter("tom_fork_frames_received", "Binary audio messages received.")
UTTERANCES_CUT = Counter(
    "tom_vad_utterances_cut", "Caller utterances cut at TOM_MAX_UTTERANCE_S (endless speech)."
)
DTMF_IGNORED = Counter(
    "tom_fork_dtmf_ignored", "DTMF messages not recorded, beyond the per-call limits.", ["reason"]
)
FRAME_PROCESSING = Histogram(
    "tom_fork_frame_processing_seconds",
    "Server time to handle one inbound audio message (decode, frame, VAD, session).",
    buckets=(0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003,
             0.005, 0.01, 0.025),
)

_STAGE_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
STT_LATENCY = Histogram("tom_stt_latency_seconds", "Utterance end to transcript.",
                        buckets=_STAGE_BUCKETS)
LLM_LATENCY = Histogram("tom_llm_latency_seconds", "Prompt to the LLM's first token.",
                        buckets=_STAGE_BUCKETS)
STT_SECOND_PASSES = Counter(
    "tom_stt_second_passes_total",
    "Utterances heard again with the catalog as Whisper's prompt because the unbiased "
    "transcript read as a catalog request (TOM_STT_BIAS=conditional).")
LLM_SPECULATION = Counter(
    "tom_llm_speculation_total",
    "LLM generations started on the transcript of the caller's pause, before the turn "
    "began (started), kept because the turn asked the same (used), or thrown away because "
    "the caller went on or the transcript changed (dropped).", ["outcome"])
TTS_LATENCY = Histogram("tom_tts_latency_seconds", "Clause to its first audio.",
                        buckets=_STAGE_BUCKETS)
E2E_LATENCY = Histogram("tom_pipeline_e2e_latency_seconds",
                        "Caller's end of speech to the first agent audio sent.",
                        buckets=(*_STAGE_BUCKETS, 8.0))
BACKPRESSURE = Counter("tom_pipeline_backpressure", "Model requests that found the model busy.",
                       ["stage"])
TOOL_CALLS_REFUSED = Counter("tom_session_tool_calls_refused",
                             "Tool calls the model asked for that were not run, by reason.",
                             ["reason"])
LIVE_EVENTS_DROPPED = Counter(
    "tom_live_events_dropped", "Console events of calls in progress that were not published "
    "(the queue was full, or the channel layer could not be reached); calls go on.",
    ["reason"],
)
