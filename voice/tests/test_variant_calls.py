"""The call's policy variant reaches the voice session: a scripted check of the prompt and
turn-taking settings, a DTMF rating over a real fork connection, and a real call."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from calls.models import Call, PolicyVariant
from calls.variants import VariantParameters
from voice import models, tts
from voice.client import ForkClient, Segment
from voice.protocols.metadata import CallStart
from voice.session.events import Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.tests.conftest import LiveServer
from voice.tests.test_local_models import _telephone
from voice.tests.test_local_session import (
    RATE,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    _drain,
    _feed,
)

PARAMS = VariantParameters(system_prompt_template="You are {persona}. Speak {language}.",
                           persona_name="Greta", vad_stop_ms=900, barge_in_min_speech_ms=320,
                           max_sentences=1, fillers=False)


async def test_the_session_takes_prompt_and_turn_taking_from_the_variant() -> None:
    llm = ScriptedLlm()
    call = CallStart(uuid="v", sample_rate=RATE, channels=1, mix_type="mono",
                     encoding="l16", language="en")
    session = LocalSession(call=call, stt_backend=ScriptedStt(), llm_backend=llm,  # type: ignore[arg-type]
                           tts_backend=ScriptedTts(), params=PARAMS)
    assert session.segmenter.params.stop_s == 0.9 and session.segmenter.barge_in_ms == 320
    t = await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2 * 2), 0.0)
    events = await _drain(session, Transcript)
    assert llm.seen[0][0] == {"role": "system", "content": "You are Greta. Speak en."}
    agent = next(e for e in events if isinstance(e, Transcript) and e.role == "agent")
    assert agent.text == "Sure, the brake pads fit your car."  # max_sentences=1
    assert t > 0.9
    await session.aclose()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_a_dtmf_text_frame_is_recorded_on_the_call(live_server_process: Any) -> None:
    server: LiveServer = live_server_process()
    call_uuid = str(uuid.uuid4())
    async with websockets.connect(server.fork_url(call_uuid=call_uuid),
                                  subprotocols=["audio.drachtio.org"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
        for _ in range(10):
            await ws.send(bytes(320))
        # As `uuid_audio_fork <uuid> send_text '{"type":"dtmf","data":{"digit":"4"}}'` sends it.
        await ws.send(json.dumps({"type": "dtmf", "data": {"digit": "4"}}))
        await ws.send(json.dumps({"type": "dtmf", "data": {"digit": "not a digit"}}))
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)
    call = await Call.objects.aget(uuid=call_uuid)
    assert call.dtmf == "4"


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_a_real_call_runs_with_its_variant(live_server_process: Any) -> None:
    for name in models.required():
        await sync_to_async(models.assemble)(name)
    variant = await PolicyVariant.objects.acreate(
        name="slow-turns", is_default=True, parameters=VariantParameters(
            vad_stop_ms=1200, max_sentences=1).model_dump())
    server: LiveServer = live_server_process(TOM_SESSION_BACKEND="local", TOM_FEATURE_RL="true")
    voice = await sync_to_async(tts.get_tts)("en")
    question = _telephone(await sync_to_async(voice.synthesize)(
        "Hello, can you tell me about your shop and what you sell?"), voice.rate)
    call_uuid = str(uuid.uuid4())
    report = await ForkClient(
        url=server.fork_url(call_uuid=call_uuid),
        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"}, rate=8000,
        segments=[Segment(question, pause_s=9.0)]).run()
    assert report.errors == []
    call = await Call.objects.select_related("variant").aget(uuid=call_uuid)
    assert call.variant == variant and call.policy_variant == "slow-turns"
    turn = await database_sync_to_async(call.turns.get)(index=0)
    assert turn.e2e_ms is not None and turn.e2e_ms >= 1200  # waited out the variant's VAD
    assert len(re.findall(r"[.!?](\s|$)", turn.agent_text)) <= 1, turn.agent_text
