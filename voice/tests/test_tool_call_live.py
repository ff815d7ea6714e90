"""End to end with real models and the real catalog: a caller asks for brake pads for a
Golf 7 over an 8 kHz μ-law line; the turn shows the parts tool call and the agent's answer
names a part number or price from the catalog."""

from __future__ import annotations

import importlib
import io
import json
import re
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.apps import apps
from django.core.management import call_command

from calls.models import Call
from toolhub import catalog, sampledocs
from toolhub.models import Part
from voice import models, tts
from voice.client import ForkClient, Segment
from voice.tests.conftest import LiveServer
from voice.tests.test_local_models import _telephone

pytestmark = [pytest.mark.models, pytest.mark.slow]

QUESTION = "Hello, do you have brake pads for a VW Golf 7?"


def _load_catalog() -> list[str]:
    """Sources, categories and the sample parts; the Golf VII brake pads' numbers/prices."""
    importlib.import_module("toolhub.migrations.0002_default_sources_and_categories").create(
        apps, None)
    report = catalog.parts_import_csv(
        text=(sampledocs.DATA / "sample_parts.csv").read_text(encoding="utf-8"))
    assert report.ok, report.errors
    pads = Part.objects.filter(vehicles__model="Golf", vehicles__generation="VII",
                               category__slug="brake-pads")
    return [p.part_number for p in pads] + [str(p.price) for p in pads]


async def test_a_parts_question_is_answered_from_the_catalog(live_server_process: Any) -> None:
    for name in models.required():
        await sync_to_async(models.assemble)(name)
    facts = await database_sync_to_async(_load_catalog)()
    server: LiveServer = live_server_process(TOM_SESSION_BACKEND="local")
    voice = await sync_to_async(tts.get_tts)("en")
    question = _telephone(await sync_to_async(voice.synthesize)(QUESTION), voice.rate)
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"},
                        rate=8000, segments=[Segment(question, pause_s=9.0)])
    report = await client.run()
    assert report.errors == []
    turn = await database_sync_to_async(
        lambda: Call.objects.get(uuid=call_uuid).turns.get(index=0))()
    assert "golf" in turn.caller_text.lower() and "brake" in turn.caller_text.lower()
    calls = [c for c in turn.tool_calls if c["tool"] == "parts_lookup"]
    assert calls and calls[0]["ok"], turn.tool_calls
    assert "Golf VII" in calls[0]["result"]
    # The answer names something only the catalog knows: a part number or a price.
    answer = re.sub(r"(\d),(\d)", r"\1.\2", turn.agent_text)
    print(f"\ncaller: {turn.caller_text}\nagent: {turn.agent_text}\n"  # noqa: T201
          f"tools: {calls[0]['ms']} ms, e2e {turn.e2e_ms} ms")
    assert any(fact in answer for fact in facts), (turn.agent_text, facts)
    # The web process's /metrics saw the call: every stage histogram and the call counter.
    scraped = await sync_to_async(_scrape)(f"{server.http}/metrics")
    for series in ("tom_pipeline_e2e_latency_seconds_count", "tom_stt_latency_seconds_count",
                   "tom_llm_latency_seconds_count", "tom_tts_latency_seconds_count",
                   "tom_telephony_calls_total"):
        assert scraped.get(series, 0) >= 1, (series, scraped.get(series))
    assert scraped['tom_tool_calls_total{source="parts",tool="parts_lookup"}'] >= 1
    # The nightly synthetic call (tom-nightly-synthetic.timer) through the same server.
    out = io.StringIO()
    await sync_to_async(call_command)("tom_synthetic_call", "--url",
                                      f"ws://{server.host}:{server.port}", stdout=out)
    synthetic = json.loads(out.getvalue())
    assert synthetic["answered"] and synthetic["errors"] == []
    call = await database_sync_to_async(Call.objects.get)(pk=synthetic["call_id"])
    assert call.synthetic is True


def _scrape(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines if line and not line.startswith("#")}
