"""What a policy variant may change about the agent, validated (pydantic) before it is
saved, and the defaults a call without a variant gets.

Whether a variant's models are installed on this server is not calls' business: calls is
the record and never imports voice (../shared/STYLE.md, "Which way the imports run"). The
app that owns the models registers a check here from its ``AppConfig.ready()``, the way
``django.core.checks.register`` lets each app add system checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Protocol

import pydantic
from django.conf import settings

# Heard instead of silence by a caller over capacity (voice.admission): short, since the
# line stays busy while it plays, and saying what to do.
BUSY_MESSAGES = {
    "en": "All our lines are busy right now. Please call back in a few minutes.",
    "de": "Alle unsere Leitungen sind gerade besetzt. Bitte rufen Sie in ein paar Minuten "
          "wieder an.",
}


class VariantParameters(pydantic.BaseModel):
    """A variant's behaviour. Empty strings mean "the setting's default"."""

    model_config = pydantic.ConfigDict(extra="forbid")

    system_prompt_template: Annotated[str, pydantic.Field(
        max_length=4000,
        description="The LLM's instructions; {persona} and {language} are filled in.")] = ""
    persona_name: Annotated[str, pydantic.Field(max_length=40)] = ""
    language: Annotated[str, pydantic.Field(pattern=r"^$|^[a-z]{2}(-[A-Z]{2})?$")] = ""
    piper_voice: Annotated[str, pydantic.Field(
        max_length=300, description="A Piper voice (.onnx) inside the models folder "
                                    "(TOM_DATA_DIR/models); empty: default.")] = ""
    stt_model: Annotated[str, pydantic.Field(
        max_length=300, pattern=r"^$|^(base|small|tiny\.en|/.+)$",
        description="Whisper: base, small, tiny.en or a model folder inside the models "
                    "folder; empty: the language's (TOM_STT_MODELS) or TOM_STT_MODEL.")] = ""
    speaking_rate: Annotated[float, pydantic.Field(
        ge=0.5, le=2.0, description="Piper length scale (lower is faster).")] = 1.0
    fillers: bool = True
    vad_stop_ms: Annotated[int, pydantic.Field(ge=150, le=2000)] = 450
    barge_in_min_speech_ms: Annotated[int, pydantic.Field(ge=40, le=2000)] = 200
    max_sentences: Annotated[int, pydantic.Field(ge=1, le=6)] = 2
    busy_message: Annotated[str, pydantic.Field(
        max_length=300, description="What a caller over capacity hears before the line "
                                    "closes (a queue message); empty: the language's.")] = ""
    record_calls: Annotated[bool | None, pydantic.Field(
        description="Record this variant's calls (true) or not (false), whatever "
                    "TOM_RECORD_CALLS says; null: the setting decides.")] = None

    @pydantic.field_validator("system_prompt_template")
    @classmethod
    def _placeholders_known(cls, value: str) -> str:
        try:
            value.format(persona="x", language="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{persona}} and {{language}} may be used: {exc}") from None
        return value

    def busy_text(self, *, language: str) -> str:
        """The busy message: the variant's, else the default in ``language`` (English
        for a language without one)."""
        return self.busy_message.strip() or BUSY_MESSAGES.get(language.split("-")[0].lower(),
                                                             BUSY_MESSAGES["en"])

    def prompt(self, *, language: str, default: str) -> str:
        if not self.system_prompt_template:
            return default
        persona = self.persona_name or settings.TOM_PERSONA_NAME
        return self.system_prompt_template.format(persona=persona, language=language)


def parameters_clean(raw: Any) -> VariantParameters:
    """Parse stored or typed parameters; raises ``pydantic.ValidationError``."""
    return VariantParameters.model_validate(raw or {})


class VariantCheck(Protocol):
    """Looks at valid parameters and returns what is wrong with them on this server, each
    problem as ``"<field>: <why>"``; an empty list when the variant can run here."""

    def __call__(self, *, params: VariantParameters) -> list[str]: ...


_checks: list[VariantCheck] = []


def variant_check_register(*, check: VariantCheck) -> VariantCheck:
    """Add ``check`` to what :func:`variant_problems` asks; registering twice is harmless
    (``ready()`` may run more than once, e.g. in tests)."""
    if check not in _checks:
        _checks.append(check)
    return check


def variant_problems(*, params: VariantParameters) -> list[str]:
    """What keeps ``params`` from running on this server, by every registered check."""
    return [problem for check in _checks for problem in check(params=params)]


def path_inside(*, path: str, root: Path) -> bool:
    """Whether ``path`` lies inside ``root`` once symlinks and ``..`` are resolved, so
    neither ``/etc/passwd`` nor ``<root>/../../etc`` nor a link out of ``root`` passes."""
    try:
        return Path(path).resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte
        return False


def defaults() -> VariantParameters:
    return VariantParameters(vad_stop_ms=settings.TOM_VAD_STOP_MS,
                             speaking_rate=settings.TOM_TTS_LENGTH_SCALE,
                             barge_in_min_speech_ms=settings.TOM_BARGE_IN_MIN_SPEECH_MS,
                             fillers=settings.TOM_FEATURE_FILLERS,
                             max_sentences=settings.TOM_MAX_SENTENCES)
