"""ChromaDB: in-process under TOM_DATA_DIR by default, a Chroma server with CHROMA_URL.

Collections are per source kind (``tom_pdf_catalog``, ``tom_knowledge_base``); every
chunk carries its ``source_id`` so a search only sees enabled sources. Embeddings are
computed here by our offline MiniLM (``toolhub.embeddings``), wrapped as a Chroma
embedding function, so neither the embedded client nor the server ever fetches one.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from toolhub import matching
from toolhub.embeddings import get_embedder

# Chroma's telemetry would phone home: TOM runs on-prem and sends nothing.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

COLLECTION_PREFIX = "tom_"
RERANK_POOL = 8
LEXICAL_BONUS = 0.05
_lock = threading.Lock()
_clients: dict[str, Any] = {}


def _embedding_function() -> Any:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    class MiniLmEmbeddingFunction(EmbeddingFunction[Documents]):
        """all-MiniLM-L6-v2 int8 from local packages; never downloads."""

        def __init__(self) -> None:
            pass

        def __call__(self, input: Documents) -> Embeddings:
            return list(get_embedder().embed(list(input)))

        @staticmethod
        def name() -> str:
            return "tom-minilm-int8"

        def get_config(self) -> dict[str, Any]:
            return {}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> MiniLmEmbeddingFunction:
            return MiniLmEmbeddingFunction()

    return MiniLmEmbeddingFunction()


def client() -> Any:
    """The process's Chroma client for the current settings."""
    import chromadb
    from chromadb.config import Settings

    key = settings.CHROMA_URL or str(settings.TOM_CHROMA_DIR)
    with _lock:
        if key not in _clients:
            chroma_settings = Settings(anonymized_telemetry=False)
            if settings.CHROMA_URL:
                url = urlsplit(settings.CHROMA_URL)
                _clients[key] = chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1", port=url.port or 8000,
                    ssl=url.scheme == "https", settings=chroma_settings)
            else:
                os.makedirs(settings.TOM_CHROMA_DIR, exist_ok=True)
                _clients[key] = chromadb.PersistentClient(
                    path=str(settings.TOM_CHROMA_DIR), settings=chroma_settings)
        return _clients[key]


def reset() -> None:
    """Forget clients (tests switch CHROMA_URL / TOM_CHROMA_DIR)."""
    with _lock:
        _clients.clear()


def collection(kind: str) -> Any:
    return client().get_or_create_collection(
        name=f"{COLLECTION_PREFIX}{kind}", embedding_function=_embedding_function(),
        metadata={"hnsw:space": "cosine"})


def replace(*, kind: str, where: dict[str, Any], ids: list[str], documents: list[str],
            metadatas: list[dict[str, Any]]) -> None:
    """Delete what ``where`` selects, then add the new chunks (a re-upload's swap)."""
    target = collection(kind)
    target.delete(where=where)
    for start in range(0, len(ids), 256):
        target.add(ids=ids[start:start + 256], documents=documents[start:start + 256],
                   metadatas=metadatas[start:start + 256])


def delete(*, kind: str, where: dict[str, Any]) -> None:
    collection(kind).delete(where=where)


def search(*, kind: str, query: str, source_ids: list[int], limit: int = 3,
           where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Best chunks for ``query`` among ``source_ids``: text, metadata and distance."""
    if not source_ids:
        return []
    clauses: list[dict[str, Any]] = [{"source_id": {"$in": source_ids}}]
    if where:
        clauses.append(where)
    found = collection(kind).query(
        query_texts=[query], n_results=max(limit * 3, RERANK_POOL),
        where=clauses[0] if len(clauses) == 1 else {"$and": clauses})
    hits = [{"text": text, "meta": meta, "distance": round(float(distance), 4)}
            for text, meta, distance in zip(found["documents"][0], found["metadatas"][0],
                                            found["distances"][0], strict=True)]
    return rerank(query, hits)[:limit]


def rerank(query: str, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order by vector distance less a bonus per query word the passage shares.

    all-MiniLM-L6-v2 is an English model: on German questions its nearest neighbours are
    often wrong while the right article shares the question's words ("zurückgeben").
    Words are compared folded and by their first five letters, so inflections match.
    """
    asked = {w[:5] for w in matching.tokens(query) if len(w) > 3}

    def score(hit: dict[str, Any]) -> float:
        said = {w[:5] for w in matching.tokens(hit["text"]) if len(w) > 3}
        return float(hit["distance"]) - LEXICAL_BONUS * len(asked & said)

    return sorted(hits, key=score)


def count(*, kind: str, source_id: int) -> int:
    return len(collection(kind).get(where={"source_id": source_id}, include=[])["ids"])
