"""System checks for the voice path (``voice.E001``…)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from tomsite.env import env_is_set
from voice import auth, backends


@register("models", deploy=True)  # deploy-only: migrate must work before tom_models
def check_backends(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Each configured STT, LLM, TTS and VAD backend's own ``check()`` (voice.backends):
    a missing model (E001-E003), a setting that loads nothing (E010), a bad or refused
    endpoint (E011, E012), a missing espeak-ng or Silero model (E013, E014, W001)."""
    if settings.TOM_SESSION_BACKEND == "echo":  # echo loads no backend at all
        return []
    messages = backends.backends_check()
    if (settings.TOM_INFERENCE == "process" and not env_is_set("TOM_LLM_BACKEND")
            and settings.TOM_LLM_BACKEND == "llamacpp"):
        messages.append(Warning(
            "TOM_INFERENCE=process, but no llama-server is installed: the LLM runs inside "
            "each web process, where a crash in llama.cpp ends every call of the process.",
            hint="Run deploy/local/run.sh (it builds llama-server into .venv/bin), or set "
                 "TOM_LLM_SERVER_BIN or TOM_LLM_SERVER_URL.", id="voice.W003"))
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
