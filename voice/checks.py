"""System checks for the voice path (``voice.E001``…)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from voice import auth, models


@register("models", deploy=True)  # deploy-only: migrate must work before tom_models
def check_models(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.TOM_SESSION_BACKEND != "local":
        return []
    messages: list[CheckMessage] = []
    # The default and every per-language model (a variant's is checked when it is saved).
    for name in dict.fromkeys([settings.TOM_STT_MODEL, *settings.TOM_STT_MODELS.values()]):
        try:
            stt_dir = models.stt_model_dir(name)
            problem = "" if (stt_dir / "model.bin").exists() else f"{stt_dir} has no model.bin"
        except models.ModelError as exc:
            problem = str(exc)
        if problem:
            messages.append(Error(
                f"STT model {name} is not available: {problem}.",
                hint="Run `python manage.py tom_models` (whisper-small: `tom_models "
                     "whisper-small`), or set TOM_STT_MODEL / TOM_STT_MODELS to a "
                     "CTranslate2 Whisper folder.", id="voice.E001"))
    if settings.TOM_LLM_BACKEND == "llamacpp" and not Path(models.llm_model_path()).exists():
        messages.append(Error(f"LLM model {models.llm_model_path()} does not exist.",
                              hint="Run `python manage.py tom_models`, or set "
                                   "TOM_LLM_MODEL_PATH to a GGUF file.", id="voice.E002"))
    if settings.TOM_PIPER_VOICE and not Path(settings.TOM_PIPER_VOICE).exists():
        messages.append(Error(f"TOM_PIPER_VOICE {settings.TOM_PIPER_VOICE} does not exist.",
                              hint="Point it at a Piper .onnx voice (its .onnx.json beside it).",
                              id="voice.E003"))
    if shutil.which("espeak-ng") is None:
        messages.append(Warning("espeak-ng is not installed: languages without a Piper voice "
                                "cannot be spoken.", hint="apt-get install espeak-ng",
                                id="voice.W001"))
    return messages


@register(Tags.security)
def check_jwt_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The fork tokens' keys: long enough (HS256) or loadable (RS256)."""
    from tomsite.checks import is_placeholder

    messages: list[CheckMessage] = []
    if settings.TOM_JWT_ALGORITHM == "HS256":
        secret = str(settings.TOM_JWT_SECRET)
        # Empty or placeholder is tomsite.E003 already.
        if not is_placeholder(secret) and len(secret.encode()) < auth.MIN_HS256_SECRET_BYTES:
            messages.append(Error(
                f"TOM_JWT_SECRET is shorter than {auth.MIN_HS256_SECRET_BYTES} bytes.",
                hint="RFC 7518 section 3.2 wants an HS256 key at least as long as the hash; "
                     "a short one can be brute-forced from one token. `python -c 'import "
                     "secrets; print(secrets.token_urlsafe(48))'`.", id="voice.E004"))
        return messages
    try:
        auth.jwt_verifying_key()
    except auth.JwtKeyError as exc:
        messages.append(Error(
            f"TOM_JWT_ALGORITHM is RS256 but the public key is unusable: {exc}.",
            hint="Set TOM_JWT_PUBLIC_KEY to a readable PEM file with the RSA public key; "
                 "without it every fork handshake is refused (reason misconfigured).",
            id="voice.E005"))
    if settings.TOM_JWT_PRIVATE_KEY:  # optional: tokens may be minted elsewhere
        try:
            auth.jwt_signing_key()
        except auth.JwtKeyError as exc:
            messages.append(Error(
                f"TOM_JWT_PRIVATE_KEY is unusable: {exc}.",
                hint="Point it at a readable, unencrypted PEM RSA private key, or leave it "
                     "empty if tokens are minted elsewhere (/fork/token then answers 503).",
                id="voice.E006"))
    return messages
