"""Indexing PDF catalogs and knowledge-base articles into ChromaDB.

Chunk ids are derived from the document and position, and every (re)index first
deletes the document's old chunks, so re-uploading a catalog replaces it instead of
mixing two editions in the answers.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.utils import timezone

from toolhub import vectorstore
from toolhub.models import CatalogDocument, KnowledgeDocument, ToolSource
from toolhub.pdf import PdfError, pdf_chunks

logger = logging.getLogger(__name__)

PDF = ToolSource.Kind.PDF_CATALOG.value
KNOWLEDGE = ToolSource.Kind.KNOWLEDGE_BASE.value
ARTICLE_CHUNK_CHARS = 700


def catalog_document_ingest(*, document: CatalogDocument) -> CatalogDocument:
    """Extract, chunk and index ``document``'s PDF; on a broken file record why and raise."""
    try:
        with document.file.open("rb") as handle:
            data = handle.read()
        pages, chunks = pdf_chunks(data)
    except (PdfError, OSError) as exc:
        reason = f"{document.title}: {exc}"
        document.status, document.error = CatalogDocument.Status.FAILED, str(exc)
        document.save(update_fields=["status", "error"])
        ToolSource.objects.filter(pk=document.source_id).update(
            last_error=reason, health=ToolSource.Health.FAILING,
            last_checked_at=timezone.now())
        logger.warning("toolhub.catalog_failed", extra={"document_id": document.pk,
                                                        "reason": str(exc)[:200]})
        raise PdfError(reason) from exc
    file_name = (document.file.name or "").rsplit("/", 1)[-1]
    vectorstore.replace(
        kind=PDF, where={"document_id": document.pk},
        ids=[f"doc{document.pk}-p{c.page}-{c.index}" for c in chunks],
        documents=[c.text for c in chunks],
        metadatas=[{"source_id": document.source_id, "document_id": document.pk,
                    "title": document.title, "file": file_name, "page": c.page}
                   for c in chunks])
    document.status, document.error = CatalogDocument.Status.INDEXED, ""
    document.pages, document.chunks, document.indexed_at = pages, len(chunks), timezone.now()
    document.save(update_fields=["status", "error", "pages", "chunks", "indexed_at"])
    logger.info("toolhub.catalog_indexed", extra={"document_id": document.pk, "pages": pages,
                                                  "chunks": len(chunks)})
    return document


def catalog_document_forget(*, document_id: int) -> None:
    vectorstore.delete(kind=PDF, where={"document_id": document_id})


def _article_chunks(body: str) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    chunks: list[str] = []
    for paragraph in paragraphs:
        if chunks and len(chunks[-1]) + len(paragraph) < ARTICLE_CHUNK_CHARS:
            chunks[-1] = f"{chunks[-1]}\n\n{paragraph}"
        else:
            chunks.append(paragraph[: ARTICLE_CHUNK_CHARS * 2])
    return chunks


def knowledge_document_index(*, document: KnowledgeDocument) -> KnowledgeDocument:
    chunks = _article_chunks(document.body)
    vectorstore.replace(
        kind=KNOWLEDGE, where={"document_id": document.pk},
        ids=[f"kb{document.pk}-{n}" for n in range(len(chunks))],
        # The title is part of what is searched: "Opening hours" answers "when are you open".
        documents=[f"{document.title}. {chunk}" for chunk in chunks],
        metadatas=[{"source_id": document.source_id, "document_id": document.pk,
                    "title": document.title, "language": document.language}
                   for _ in chunks])
    document.indexed_at = timezone.now()
    KnowledgeDocument.objects.filter(pk=document.pk).update(indexed_at=document.indexed_at)
    return document


def knowledge_document_forget(*, document_id: int) -> None:
    vectorstore.delete(kind=KNOWLEDGE, where={"document_id": document_id})


def knowledge_upsert(*, source: ToolSource, title: str, language: str,
                     body: str) -> KnowledgeDocument:
    document, _ = KnowledgeDocument.objects.update_or_create(
        source=source, title=title, language=language, defaults={"body": body})
    return knowledge_document_index(document=document)


CATALOG_SUFFIXES = (".pdf",)


def catalog_upload_check(*, name: str, size: int, head: bytes) -> None:
    """Refuse an upload the catalog cannot index, before it is saved: anything but a PDF
    (by its first bytes and its name, so no HTML or SVG lands in the media folder) and
    anything over ``TOM_UPLOAD_MAX_BYTES``. Raises ``PdfError`` saying which."""
    limit = settings.TOM_UPLOAD_MAX_BYTES
    if size > limit:
        raise PdfError(f"the file is {size / 2**20:.1f} MB; the limit is "
                       f"{limit / 2**20:.1f} MB (TOM_UPLOAD_MAX_BYTES)")
    if not name.lower().endswith(CATALOG_SUFFIXES) or not head.startswith(b"%PDF-"):
        raise PdfError("only PDF files can be uploaded (a .pdf starting with %PDF-)")


def catalog_document_store(*, source: ToolSource, title: str, file_name: str, data: bytes,
                           ingest: bool = True) -> CatalogDocument:
    """Save a PDF as ``title`` in ``source`` (replacing an earlier upload) and index it."""
    from django.core.files.base import ContentFile

    document = CatalogDocument.objects.filter(source=source, title=title).first()
    if document is None:
        document = CatalogDocument(source=source, title=title)
    elif document.file:
        document.file.delete(save=False)
    document.status, document.error = CatalogDocument.Status.PENDING, ""
    document.file.save(file_name, ContentFile(data), save=True)
    return catalog_document_ingest(document=document) if ingest else document
