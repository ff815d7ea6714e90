"""What TOM sends back to each fork module, pinned to how the module parses it.

- drachtio mod_audio_fork (``?mode=file``): JSON text only; binary from the server is
  discarded (``audio_pipe.cpp`` RECEIVE). ``playAudio`` needs ``audioContentType``
  (a missing one crashes the module); ``raw`` with ``sampleRate`` 8000/16000/24000
  becomes an ``.r8``/``.r16``/``.r24`` file and a ``mod_audio_fork::play_audio`` event
  the application plays; ``killAudio`` sets the channel's break flag
  (``lws_glue.cpp processIncomingMessage()``).
- jambonz mod_audio_fork (``?mode=stream``): binary L16 mono at the stream rate, mixed
  into the call after a 160 ms (then 80 ms) prebuffer; ``mark`` queues a name that is
  answered ``playout`` once the audio before it was played; ``killAudio`` empties the
  playout buffer and answers ``cleared`` for pending marks (``lws_glue.cpp
  processIncomingBinary()``, ``dub_speech_frame()``). A sample of -1 (0xFFFF) is the
  module's mark sentinel, so outgoing audio never contains it.
- amigniter mod_audio_stream: ``streamAudio`` with ``audioDataType`` ``raw`` and a
  ``sampleRate`` of 8000/16000/24000/32000/48000/64000 (``AudioStreamer::processMessage()``).
  It has no ``killAudio``: any other JSON becomes a ``mod_audio_stream::json`` event,
  so TOM's ``killAudio`` reaches the application, which answers with ``uuid_break``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def play_audio(*, pcm: bytes, rate: int, text: str) -> str:
    """drachtio ``playAudio``: one sentence of L16 as a base64 ``raw`` file."""
    return _text({"type": "playAudio", "data": {
        "audioContentType": "raw", "sampleRate": rate,
        "audioContent": base64.b64encode(pcm).decode("ascii"), "textContent": text,
    }})


def stream_audio(*, pcm: bytes, rate: int, text: str) -> str:
    """mod_audio_stream ``streamAudio``: one sentence of L16 as base64 ``raw``."""
    return _text({"type": "streamAudio", "data": {
        "audioDataType": "raw", "sampleRate": rate,
        "audioData": base64.b64encode(pcm).decode("ascii"), "textContent": text,
    }})


def kill_audio() -> str:
    return _text({"type": "killAudio"})


def mark(name: str) -> str:
    return _text({"type": "mark", "data": {"name": name}})


def transcription(*, role: str, text: str, final: bool, turn: int) -> str:
    """Re-emitted by the module as ``mod_audio_fork::transcription`` with ``data`` as body."""
    return _text({"type": "transcription",
                  "data": {"role": role, "text": text, "final": final, "turn": turn}})


def disconnect(reason: str) -> str:
    return _text({"type": "disconnect", "data": {"reason": reason}})


def error(message: str) -> str:
    return _text({"type": "error", "data": {"message": message}})


def stream_safe(pcm: bytes) -> bytes:
    """Replace -1 samples by -2: jambonz takes 0xFFFF for its mark sentinel."""
    samples = np.frombuffer(pcm, dtype="<i2")
    if not (samples == -1).any():
        return pcm
    return np.where(samples == -1, -2, samples).astype("<i2").tobytes()
