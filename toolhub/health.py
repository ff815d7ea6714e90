"""Health checks per source kind: each returns what it measured or raises with the reason."""

from __future__ import annotations

import time
from typing import Any

from toolhub import vectorstore
from toolhub.models import CatalogDocument, Part, ToolSource, Vehicle


def check(source: ToolSource) -> dict[str, Any]:
    checks = {ToolSource.Kind.PARTS: _parts, ToolSource.Kind.PDF_CATALOG: _pdf_catalog,
              ToolSource.Kind.KNOWLEDGE_BASE: _knowledge_base}
    if source.kind not in checks:
        raise ValueError(f"unknown source kind {source.kind!r}")
    return checks[ToolSource.Kind(source.kind)](source)


def _parts(source: ToolSource) -> dict[str, Any]:
    parts, vehicles = Part.objects.count(), Vehicle.objects.count()
    if not parts:
        raise RuntimeError("the parts catalog is empty: import a CSV")
    return {"parts": parts, "vehicles": vehicles,
            "in_stock": Part.objects.filter(stock__gt=0).count()}


def _timed_count(kind: str, source: ToolSource) -> dict[str, Any]:
    started = time.perf_counter()
    chunks = vectorstore.count(kind=kind, source_id=source.pk)
    return {"chunks": chunks, "chroma_ms": round((time.perf_counter() - started) * 1000)}


def _pdf_catalog(source: ToolSource) -> dict[str, Any]:
    detail = _timed_count(ToolSource.Kind.PDF_CATALOG, source)
    documents = source.documents.all()
    failed = [d.title for d in documents if d.status == CatalogDocument.Status.FAILED]
    detail.update(documents=len(documents), failed=failed)
    if failed:
        raise RuntimeError(f"{len(failed)} catalog(s) failed to index: {', '.join(failed)}")
    if not detail["chunks"]:
        raise RuntimeError("no catalog indexed: upload a PDF")
    return detail


def _knowledge_base(source: ToolSource) -> dict[str, Any]:
    detail = _timed_count(ToolSource.Kind.KNOWLEDGE_BASE, source)
    detail["articles"] = source.articles.count()
    if not detail["chunks"]:
        raise RuntimeError("the knowledge base has no indexed articles")
    return detail
