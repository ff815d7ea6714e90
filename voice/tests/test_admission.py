"""Admission by capacity, in process: a caller over ``TOM_CAPACITY_CALLS`` hears the busy
message through the call's own transport and is disconnected once it has played, from a
message synthesized before the busy moment; the hard cap still refuses the handshake."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from calls.models import Call, PolicyVariant
from calls.variants import BUSY_MESSAGES, VariantParameters
from voice import admission, tts
from voice.tests.conftest import fork_communicator
from voice.tests.test_bridge_live import ended_call

pytestmark = pytest.mark.django_db(transaction=True)

BUSY_EN = "All our lines are busy right now. Please call back in a few minutes."


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0


@pytest.fixture
def capacity_one(settings: Any) -> Iterator[None]:
    """One call served; up to two more connections hear the busy message (espeak-ng)."""
    settings.TOM_SESSION_BACKEND = "echo"
    settings.TOM_TTS_BACKEND = "espeak"
    settings.TOM_LANGUAGE = "en"
    settings.TOM_CAPACITY_CALLS = 1
    settings.TOM_MAX_CONCURRENT_CALLS = 3
    admission.admission_cache_clear()
    assert admission.admission_counts() == (0, 0)
    yield
    if admission._prepared is not None:  # its engine reads settings this test changed
        admission._prepared.join(timeout=60)
    admission.admission_cache_clear()


async def _served_call() -> tuple[Any, str]:
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
    return fork, call_uuid


async def test_a_caller_over_capacity_hears_the_busy_message_then_is_disconnected(
        capacity_one: None, monkeypatch: pytest.MonkeyPatch) -> None:
    busy_before = _sample("tom_calls_busy_total")
    served, _ = await _served_call()
    # The first call served had the busy message synthesized: a busy moment costs no TTS.
    assert admission._prepared is not None
    await asyncio.to_thread(admission._prepared.join, 60)

    def no_tts(**kwargs: Any) -> bytes:
        raise AssertionError("TTS ran at the busy moment")

    monkeypatch.setattr(tts, "speech_synthesize", no_tts)
    call_uuid = str(uuid.uuid4())
    busy = fork_communicator(call_uuid)
    assert (await busy.connect())[0]  # accepted: a refused handshake is silence
    assert admission.admission_counts() == (2, 1)
    await busy.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
    loop = asyncio.get_running_loop()
    play = json.loads(await busy.receive_from(timeout=10))
    sent_at = loop.time()
    assert play["type"] == "playAudio" and play["data"]["textContent"] == BUSY_EN
    assert play["data"]["sampleRate"] == 8000
    pcm = base64.b64decode(play["data"]["audioContent"])
    seconds = len(pcm) / 2 / 8000
    assert seconds > 2.0 and _rms(pcm) > 300, (seconds, _rms(pcm))  # speech, not silence
    # Disconnected once the file has played (the transport's playout report), not at once:
    # FreeSWITCH's application hangs up on ``disconnect``, cutting what still plays.
    message = json.loads(await busy.receive_from(timeout=seconds + 5))
    assert message == {"type": "disconnect", "data": {"reason": "busy"}}
    assert loop.time() - sent_at >= seconds - 0.05
    assert await busy.receive_output() == {"type": "websocket.close", "code": 1000}
    call = await ended_call(call_uuid)
    assert (call.status, call.end_reason) == (Call.Status.COMPLETED, Call.EndReason.BUSY)
    assert call.answered_at is None and not call.rewardable
    assert _sample("tom_calls_busy_total") == busy_before + 1
    assert _sample("tom_telephony_calls_ended_total", reason="busy") >= 1
    assert admission.admission_counts() == (1, 1)
    # The call being served heard nothing of it, and its place frees the line.
    assert await served.receive_nothing(timeout=0.1)
    await served.disconnect()
    assert admission.admission_counts() == (0, 0)
    next_call, _ = await _served_call()
    assert await next_call.receive_nothing(timeout=0.3)  # served: no busy message
    await next_call.disconnect()


async def test_the_hard_cap_still_refuses_the_handshake(
        capacity_one: None, settings: Any) -> None:
    settings.TOM_MAX_CONCURRENT_CALLS = 2
    refused_before = _sample("tom_telephony_handshakes_refused_total", reason="overloaded")
    served, _ = await _served_call()
    busy = fork_communicator(str(uuid.uuid4()))
    assert (await busy.connect())[0]  # over capacity, under the hard cap
    flood = fork_communicator(str(uuid.uuid4()))
    assert (await flood.connect())[0] is False  # over the hard cap: refused (HTTP 403)
    assert _sample("tom_telephony_handshakes_refused_total",
                   reason="overloaded") == refused_before + 1
    assert admission.admission_counts() == (2, 1)
    await busy.disconnect()
    await served.disconnect()
    assert admission.admission_counts() == (0, 0)


async def test_a_variant_sets_the_busy_message(capacity_one: None, settings: Any) -> None:
    settings.TOM_FEATURE_RL = True
    variant = await PolicyVariant.objects.acreate(
        name="queue", is_default=True, parameters=VariantParameters(
            busy_message="Please hold the line.").model_dump())
    served, _ = await _served_call()
    call_uuid = str(uuid.uuid4())
    busy = fork_communicator(call_uuid)
    assert (await busy.connect())[0]
    await busy.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": 16000}))
    play = json.loads(await busy.receive_from(timeout=30))
    assert play["data"]["textContent"] == "Please hold the line."
    assert play["data"]["sampleRate"] == 16000 and _rms(base64.b64decode(
        play["data"]["audioContent"])) > 300
    assert json.loads(await busy.receive_from(timeout=10))["data"] == {"reason": "busy"}
    call = await ended_call(call_uuid)
    assert (call.end_reason, call.variant_id) == (Call.EndReason.BUSY, variant.pk)
    await served.disconnect()
    await busy.wait()


async def test_espeak_speaks_the_busy_message_when_the_calls_voice_fails(
        capacity_one: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> tts.TtsBackend:
        raise tts.TtsError("Piper voice /nowhere.onnx does not exist")

    monkeypatch.setattr(tts, "get_tts", broken)
    pcm = await admission.admission_busy_audio(text=BUSY_MESSAGES["de"], language="de",
                                               voice="/nowhere.onnx", length_scale=1.0,
                                               rate=8000)
    assert len(pcm) / 2 / 8000 > 2.0 and _rms(pcm) > 300


def test_the_busy_message_is_the_variants_else_the_languages() -> None:
    assert VariantParameters().busy_text(language="en") == BUSY_EN
    assert VariantParameters().busy_text(language="de-AT") == BUSY_MESSAGES["de"]
    assert VariantParameters().busy_text(language="fr") == BUSY_EN  # none in French yet
    assert VariantParameters(busy_message=" Bitte warten. ").busy_text(
        language="en") == "Bitte warten."


def test_capacity_is_configured_or_derived(settings: Any) -> None:
    settings.TOM_CAPACITY_CALLS = None
    settings.TOM_SESSION_BACKEND = "local"
    assert admission.admission_capacity() == 2 * len(os.sched_getaffinity(0))
    settings.TOM_SESSION_BACKEND = "echo"  # no models: only the hard cap
    assert admission.admission_capacity() == 0
    settings.TOM_CAPACITY_CALLS = 7
    assert admission.admission_capacity() == 7
    settings.TOM_CAPACITY_CALLS = 0
    assert admission.admission_capacity() == 0


@pytest.mark.models  # the packaged Piper voice
async def test_the_busy_message_is_spoken_in_the_calls_voice(
        capacity_one: None, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_TTS_BACKEND = "piper"

    def no_fallback(language: str) -> tts.TtsBackend:
        raise AssertionError("the call's voice failed: espeak-ng spoke instead")

    monkeypatch.setattr(tts, "fallback_tts", no_fallback)
    pcm = await admission.admission_busy_audio(text=BUSY_EN, language="en", voice="",
                                               length_scale=1.0, rate=8000)
    assert len(pcm) / 2 / 8000 > 2.0 and _rms(pcm) > 300
    # Kept: the next busy moment takes it from the cache.
    monkeypatch.setattr(tts, "get_tts", no_fallback)
    again = await admission.admission_busy_audio(text=BUSY_EN, language="en", voice="",
                                                 length_scale=1.0, rate=8000)
    assert again == pcm
