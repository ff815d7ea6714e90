from __future__ import annotations

from pathlib import Path

from django.test import override_settings


def test_deploy_checks_name_missing_models(tmp_path: Path) -> None:
    from django.core.checks import run_checks

    with override_settings(TOM_DATA_DIR=tmp_path, TOM_SESSION_BACKEND="local",
                           TOM_STT_MODEL="base", TOM_LLM_BACKEND="llamacpp",
                           TOM_LLM_MODEL_PATH="", TOM_PIPER_VOICE=str(tmp_path / "x.onnx")):
        ids = {m.id for m in run_checks(include_deployment_checks=True, tags=["models"])}
        assert {"voice.E001", "voice.E002", "voice.E003"} <= ids
    with override_settings(TOM_SESSION_BACKEND="local", TOM_STT_MODEL="tiny.en",
                           TOM_LLM_MODEL_PATH=__file__, TOM_PIPER_VOICE=""):
        ids = {m.id for m in run_checks(include_deployment_checks=True, tags=["models"])}
        assert not ids & {"voice.E001", "voice.E002", "voice.E003"}
