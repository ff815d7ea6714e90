"""The call checks with real models: a synthetic call through a real server, graded; and a
broken STT model path makes `manage.py greenlights` exit 2 naming the check and reason."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

from greenlights.models import GreenlightResult
from voice import models
from voice.tests.conftest import LiveServer

pytestmark = [pytest.mark.models, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CALL_CHECKS = ["stt_latency", "llm_latency", "tts_latency", "e2e_latency", "barge_in",
               "audio_quality"]


def _greenlights(server: LiveServer, *only: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    args = [a for name in only for a in ("--only", name)]
    with pytest.raises(SystemExit) as exited:
        call_command("greenlights", *args, "--json", "--url", server.http, stdout=out)
    return int(exited.value.code or 0), [json.loads(line) for line in
                                         out.getvalue().splitlines()]


def test_a_synthetic_call_measures_every_stage(live_server_process: Any) -> None:
    for name in models.required():
        models.assemble(name)
    server: LiveServer = live_server_process(TOM_SESSION_BACKEND="local")
    code, results = _greenlights(server, *CALL_CHECKS)
    by_name = {r["check"]: r for r in results}
    assert list(by_name) == CALL_CHECKS
    print("\n" + "\n".join(f"{r['state']:6} {r['check']:14} {r['summary']}"  # noqa: T201
                           for r in results))
    for name in ("stt_latency", "llm_latency", "tts_latency"):
        assert by_name[name]["values"].get("worst_ms") is not None, by_name[name]
    assert by_name["e2e_latency"]["values"]["client_ms"]
    assert by_name["barge_in"]["values"]["barge_in_ms"] <= 250, by_name["barge_in"]
    quality = by_name["audio_quality"]["values"]
    assert quality["sample_rates"] == [8000] and quality["clipping_ratio"] < 0.001
    assert quality["heard"] and quality["wer"] <= 0.5, quality
    # Every call check links the synthetic call it placed.
    linked = {r.call_id for r in GreenlightResult.objects.filter(name__in=CALL_CHECKS)}
    assert len(linked) == 1 and None not in linked
    assert code in (0, 1, 2)  # the grade depends on this CPU; the values are the evidence


def test_a_broken_stt_model_path_exits_2_naming_check_and_reason(
        live_server_process: Any) -> None:
    # No warm-up: with this model it fails, and /healthz would never say ready; here the
    # greenlight's own call is what must find the broken path.
    server: LiveServer = live_server_process(TOM_SESSION_BACKEND="local",
                                             TOM_STT_MODEL="/nonexistent/whisper",
                                             TOM_WARM_UP="false")
    code, results = _greenlights(server, "stt_latency")
    assert code == 2
    assert results[0]["check"] == "stt_latency" and results[0]["state"] == "red"
    assert "/nonexistent/whisper" in results[0]["error"], results[0]
