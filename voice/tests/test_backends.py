"""STT, LLM, TTS and VAD backends chosen by one setting each, through one handler
(voice.backends): aliases and dotted paths, loaded once, misconfiguration as system
checks, and TOM_SESSION_BACKEND=provider no longer overriding an explicit backend."""

from __future__ import annotations

import runpy
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.checks import CheckMessage, Warning, run_checks
from django.test import override_settings

from voice import backends, checks, llm, stt, tts, vad
from voice.backends import BackendHandler, BackendUnavailable
from voice.llm_deltas import LlmDelta, TextDelta
from voice.protocols.metadata import CallStart
from voice.providers import OllamaLlm, OpenAiLlm, OpenAiStt, OpenAiTts
from voice.session.factory import create_session
from voice.session.local import LocalSession

CALL = CallStart(uuid="b", sample_rate=8000, channels=1, mix_type="mono", encoding="l16")
BACKEND_VARIABLES = ("TOM_SESSION_BACKEND", "TOM_STT_BACKEND", "TOM_LLM_BACKEND",
                     "TOM_TTS_BACKEND", "TOM_TTS_ENGINE", "TOM_VAD_BACKEND", "TOM_VAD_ENGINE",
                     "TOM_INFERENCE", "TOM_LLM_SERVER_BIN", "TOM_LLM_SERVER_URL")


class ScriptedLlm(llm.LlmBackend):
    """A backend from outside the alias table, named by its dotted path."""

    built: ClassVar[list[ScriptedLlm]] = []

    def __init__(self) -> None:
        type(self).built.append(self)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return [Warning("scripted backend checked", id="tests.W001")]

    def stream(self, messages: list[llm.Message], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        yield TextDelta("scripted")


class GatedLlm(ScriptedLlm):
    """Loads only when the test opens the gate, like a model that takes seconds."""

    loading = threading.Event()
    gate = threading.Event()

    def __init__(self) -> None:
        type(self).loading.set()
        assert type(self).gate.wait(10)
        super().__init__()


def _model_checks() -> list[CheckMessage]:
    return list(run_checks(include_deployment_checks=True, tags=["models"]))


def _settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """tomsite.tom_settings as the environment ``env`` (and nothing else TOM's) makes it."""
    for name in BACKEND_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import tomsite.tom_settings

    # A fresh run of the module's file: the imported one keeps this process's settings.
    return runpy.run_path(tomsite.tom_settings.__file__)


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("stt", "whisper", stt.WhisperStt),
    ("stt", "openai", OpenAiStt),
    ("llm", "llama_cpp", llm.LlamaCppLlm),
    ("llm", "llamacpp", llm.LlamaCppLlm),  # the value before issue 15 still works
    ("llm", "ollama", OllamaLlm),
    ("llm", "OpenAI", OpenAiLlm),
    ("tts", "piper", tts.PiperTts),
    ("tts", "espeak", tts.EspeakTts),
    ("tts", "openai", OpenAiTts),
    ("vad", "webrtc", vad.WebrtcClassifier),
    ("vad", "silero", vad.SileroClassifier),
    ("llm", "voice.providers.OllamaLlm", OllamaLlm),
    ("llm", "voice.tests.test_backends.ScriptedLlm", ScriptedLlm),
    ("vad", "voice.vad.SileroClassifier", vad.SileroClassifier),
])
def test_an_alias_or_a_dotted_path_names_the_backend_class(kind: str, value: str,
                                                         expected: type) -> None:
    with override_settings(**{backends.KINDS[kind].setting: value}):
        assert backends.backend_class(kind) is expected


def _chosen(values: dict[str, Any]) -> list[str]:
    return [values[f"TOM_{k}_BACKEND"] for k in ("STT", "LLM", "TTS", "VAD")]


def test_the_default_runs_the_models_in_the_hosts_model_servers(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    values = _settings_from(monkeypatch, TOM_LLM_SERVER_BIN=str(binary))
    assert values["TOM_INFERENCE"] == "process"
    assert _chosen(values) == ["speech-server", "llamacpp-server", "speech-server", "webrtc"]
    # The model servers batch: the web process lets several turns at them at once.
    assert values["TOM_LLM_MAX_CONCURRENCY"] == values["TOM_LLM_PARALLEL"] == 4
    assert values["TOM_STT_MAX_CONCURRENCY"] == values["TOM_STT_BATCH"]
    # espeak-ng is a program of its own already: it stays as it is.
    values = _settings_from(monkeypatch, TOM_LLM_SERVER_BIN=str(binary), TOM_TTS_ENGINE="espeak")
    assert values["TOM_TTS_BACKEND"] == "espeak"
    # No llama-server installed (pip alone, no deploy/local): the LLM stays in process,
    # and voice.W003 says what that costs.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    values = _settings_from(monkeypatch)
    assert _chosen(values) == ["speech-server", "llamacpp", "speech-server", "webrtc"]
    with override_settings(TOM_SESSION_BACKEND="local", **{
            k: values[k] for k in ("TOM_INFERENCE", "TOM_LLM_BACKEND")}):
        assert "voice.W003" in {m.id for m in checks.check_backends()}


def test_the_defaults_and_the_old_setting_names(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _settings_from(monkeypatch, TOM_INFERENCE="inline")
    assert _chosen(values) == ["whisper", "llamacpp", "piper", "webrtc"]
    assert values["TOM_LLM_MAX_CONCURRENCY"] == 1
    values = _settings_from(monkeypatch, TOM_INFERENCE="inline", TOM_TTS_ENGINE="espeak",
                            TOM_VAD_ENGINE="silero")
    assert (values["TOM_TTS_BACKEND"], values["TOM_VAD_BACKEND"]) == ("espeak", "silero")
    # The segmenter still reads the old name: it must name the same backend.
    values = _settings_from(monkeypatch, TOM_VAD_BACKEND="voice.vad.SileroClassifier")
    assert values["TOM_VAD_ENGINE"] == "voice.vad.SileroClassifier"


def test_a_backend_is_imported_and_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []
    real_import = backends.import_string
    monkeypatch.setattr(backends, "import_string",
                        lambda path: imported.append(path) or real_import(path))
    monkeypatch.setattr(backends, "handler", BackendHandler())  # nothing cached yet
    before = len(ScriptedLlm.built)
    with override_settings(TOM_LLM_BACKEND="voice.tests.test_backends.ScriptedLlm"):
        first, second = llm.get_llm(), llm.get_llm()
        assert backends.backend_class("llm") is ScriptedLlm
    assert isinstance(first, ScriptedLlm) and first is second
    assert len(ScriptedLlm.built) - before == 1
    assert imported.count("voice.tests.test_backends.ScriptedLlm") == 1
    # A different configuration is a different instance; the first stays cached.
    with override_settings(TOM_STT_BACKEND="openai", TOM_PROVIDER_STT_MODEL="a"):
        a = stt.get_stt()
    with override_settings(TOM_STT_BACKEND="openai", TOM_PROVIDER_STT_MODEL="b"):
        b = stt.get_stt()
    with override_settings(TOM_STT_BACKEND="openai", TOM_PROVIDER_STT_MODEL="a"):
        assert stt.get_stt() is a
    assert isinstance(a, OpenAiStt) and (a.model, b.model) == ("a", "b")


def test_a_slow_load_happens_once_and_holds_up_no_other_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "handler", BackendHandler())
    before = len(ScriptedLlm.built)
    got: list[llm.LlmBackend] = []
    with override_settings(TOM_LLM_BACKEND="voice.tests.test_backends.GatedLlm",
                           TOM_STT_BACKEND="openai"):
        threads = [threading.Thread(target=lambda: got.append(llm.get_llm()))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        assert GatedLlm.loading.wait(10)
        # While the LLM loads, another kind's backend is built and handed out.
        assert isinstance(stt.get_stt(), OpenAiStt)
        GatedLlm.gate.set()
        for thread in threads:
            thread.join(10)
    assert len(got) == 2 and got[0] is got[1] and isinstance(got[0], GatedLlm)
    assert len(ScriptedLlm.built) - before == 1


@pytest.mark.parametrize(("value", "words"), [
    ("voice.nowhere.Llm", "TOM_LLM_BACKEND='voice.nowhere.Llm' cannot be imported: "),
    ("voice.llm.NoSuchLlm", "TOM_LLM_BACKEND='voice.llm.NoSuchLlm' cannot be imported: "),
    ("llama", "TOM_LLM_BACKEND='llama' is neither an alias (llama_cpp, llamacpp, "
              "llamacpp-server, ollama, openai) nor a dotted path."),
    ("voice.stt.WhisperStt", "TOM_LLM_BACKEND='voice.stt.WhisperStt' is not a subclass of "
                             "voice.llm.LlmBackend."),
])
async def test_a_bad_backend_setting_is_a_check_error_and_refuses_the_call_in_words(
        value: str, words: str) -> None:
    with override_settings(TOM_LLM_BACKEND=value, TOM_FEATURE_TOOLS=False):
        errors = [m for m in _model_checks() if m.id == "voice.E010"]
        assert len(errors) == 1 and errors[0].msg.startswith(words), errors
        assert errors[0].is_serious()
        # At call time: BackendUnavailable (the consumer ends the call with its text),
        # before any model loads, never an ImportError from deep inside the session.
        with pytest.raises(BackendUnavailable) as refused:
            create_session(call=CALL)
        assert str(refused.value).startswith(words)
        with pytest.raises(BackendUnavailable):
            llm.get_llm()


def test_a_bad_vad_setting_refuses_the_classifier_and_is_a_check_error() -> None:
    with override_settings(TOM_VAD_BACKEND="voice.vad.Nothing",
                           TOM_VAD_ENGINE="voice.vad.Nothing"):
        assert "voice.E010" in {m.id for m in _model_checks()}
        with pytest.raises(BackendUnavailable, match=r"TOM_VAD_BACKEND='voice\.vad\.Nothing'"):
            vad.make_classifier(rate=8000)
    with override_settings(TOM_VAD_BACKEND="silero"):
        assert isinstance(vad.make_classifier(rate=8000), vad.SileroClassifier)


def test_the_system_check_gathers_every_configured_backends_messages_once() -> None:
    with override_settings(TOM_SESSION_BACKEND="local", TOM_STT_BACKEND="openai",
                           TOM_LLM_BACKEND="voice.tests.test_backends.ScriptedLlm",
                           TOM_TTS_BACKEND="openai", TOM_PROVIDER_BASE_URL="127.0.0.1:8080"):
        ids = [m.id for m in _model_checks() if m.id and not m.id.startswith("tomsite.")]
    # STT and TTS share the endpoint: its error once; the dotted-path LLM's own check too.
    assert sorted(ids) == ["tests.W001", "voice.E011"]
    with override_settings(TOM_SESSION_BACKEND="echo", TOM_LLM_BACKEND="voice.nowhere.X"):
        assert not [m for m in _model_checks() if m.id and m.id.startswith("voice.")]


@pytest.mark.parametrize(("url", "egress", "expected"), [
    ("http://127.0.0.1:8080/v1", False, []),
    ("127.0.0.1:8080/v1", False, ["voice.E011"]),  # no scheme
    ("ftp://127.0.0.1/v1", False, ["voice.E011"]),
    ("", False, ["voice.E011"]),
    ("https://93.184.216.34/v1", False, ["voice.E012"]),  # public: refused per call
    ("https://93.184.216.34/v1", True, []),
])
@pytest.mark.parametrize("backend", [OpenAiStt, OpenAiLlm, OpenAiTts])
def test_the_openai_backends_check_their_endpoint(backend: Any, url: str, egress: bool,
                                                  expected: list[str]) -> None:
    with override_settings(TOM_PROVIDER_BASE_URL=url, ALLOW_EGRESS=egress):
        messages = backend.check()
    assert [m.id for m in messages] == expected
    assert all(m.is_serious() and "TOM_PROVIDER_BASE_URL" in m.msg for m in messages)


def test_ollama_checks_its_host() -> None:
    with override_settings(OLLAMA_HOST="http://127.0.0.1:11434"):
        assert OllamaLlm.check() == []
    with override_settings(OLLAMA_HOST="127.0.0.1:11434"):
        assert [m.id for m in OllamaLlm.check()] == ["voice.E011"]
        assert "OLLAMA_HOST='127.0.0.1:11434' is not an http(s) URL" in OllamaLlm.check()[0].msg


def test_the_local_backends_check_their_files_and_binaries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(TOM_STT_MODEL=str(tmp_path / "whisper"), TOM_STT_MODELS={}):
        [missing] = stt.WhisperStt.check()
    assert missing.id == "voice.E001" and str(tmp_path / "whisper") in missing.msg
    with override_settings(TOM_LLM_MODEL_PATH=str(tmp_path / "q.gguf")):
        assert [m.id for m in llm.LlamaCppLlm.check()] == ["voice.E002"]
    with override_settings(TOM_LLM_MODEL_PATH=__file__):
        assert llm.LlamaCppLlm.check() == []
    with override_settings(TOM_PIPER_VOICE=str(tmp_path / "v.onnx")):
        assert "voice.E003" in [m.id for m in tts.PiperTts.check()]
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)  # no espeak-ng installed
    with override_settings(TOM_PIPER_VOICE=""):
        # Piper still speaks English without it; espeak-ng as the backend speaks nothing.
        assert [(m.id, m.is_serious()) for m in tts.PiperTts.check()] == [("voice.W001", False)]
    [espeak] = tts.EspeakTts.check()
    assert espeak.id == "voice.E013" and espeak.is_serious()
    assert vad.WebrtcClassifier.check() == []
    assert vad.SileroClassifier.check() == []
    monkeypatch.setattr(vad.SileroClassifier, "_model_path",
                        staticmethod(lambda: tmp_path / "silero.onnx"))
    [silero] = vad.SileroClassifier.check()
    assert silero.id == "voice.E014" and str(tmp_path / "silero.onnx") in silero.msg


async def test_provider_no_longer_overrides_an_explicit_llm_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = _settings_from(monkeypatch, TOM_SESSION_BACKEND="provider",
                            TOM_LLM_BACKEND="ollama")
    chosen = {name: values[name] for name in
              ("TOM_STT_BACKEND", "TOM_LLM_BACKEND", "TOM_TTS_BACKEND", "TOM_VAD_BACKEND")}
    assert chosen == {"TOM_STT_BACKEND": "openai", "TOM_LLM_BACKEND": "ollama",
                      "TOM_TTS_BACKEND": "openai", "TOM_VAD_BACKEND": "webrtc"}
    # The session that such a process builds: local orchestration, Ollama's LLM.
    with override_settings(TOM_SESSION_BACKEND="provider", TOM_FEATURE_TOOLS=False,
                           TOM_PROVIDER_BASE_URL="http://127.0.0.1:9/v1",
                           OLLAMA_HOST="http://127.0.0.1:9", **chosen):
        session = create_session(call=CALL)
        await session.prepare()
    assert isinstance(session, LocalSession)
    assert isinstance(session._llm, OllamaLlm)
    assert isinstance(session._stt, OpenAiStt) and isinstance(session._tts, OpenAiTts)
    # Without an explicit LLM backend, provider still means the OpenAI-compatible one.
    values = _settings_from(monkeypatch, TOM_SESSION_BACKEND="provider")
    assert values["TOM_LLM_BACKEND"] == "openai"
