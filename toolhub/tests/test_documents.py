"""PDF catalogs and the knowledge base in ChromaDB: ingest, search with page references,
replacement on re-upload, broken files, and the real Chroma server."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolhub import documents, tasks, vectorstore
from toolhub.models import CatalogDocument, ToolSource
from toolhub.pdf import PdfError, pdf_pages, pdf_write
from toolhub.services import ToolContext, tool_call

# Tools run in their own threads and database connections: commit what they must see.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.models]

EDITION_1 = [
    ["Brake catalog 2025", "Contents: brake pads, brake discs, fitting notes."],
    ["Brake discs", "Golf VII front brake discs are 25 mm new and 22 mm minimum thickness.",
     "Tighten the caliper carrier bolts to 200 Nm."],
    ["Spark plugs", "Set the electrode gap to 0.8 mm. Tighten spark plugs to 25 Nm."],
]
EDITION_2 = [
    ["Brake catalog 2026", "Contents: brake discs only."],
    ["Brake discs", "From 2026 Golf VII front brake discs are 26 mm new and 23 mm minimum."],
]


def _pdf_source() -> ToolSource:
    return ToolSource.objects.get(kind=ToolSource.Kind.PDF_CATALOG)


def _upload(source: ToolSource, pages: list[list[str]] | bytes, title: str) -> CatalogDocument:
    data = pages if isinstance(pages, bytes) else pdf_write(pages, title=title)
    return documents.catalog_document_store(source=source, title=title, file_name="cat.pdf",
                                            data=data, ingest=False)


def test_the_pdf_writer_makes_pdfs_pypdf_reads() -> None:
    pages = pdf_pages(pdf_write([["Hello (world)", "Bremsbeläge für 49,90 €"], ["Page two"]]))
    assert len(pages) == 2
    assert "Hello (world)" in pages[0] and "Bremsbeläge für 49,90 €" in pages[0]
    assert "Page two" in pages[1]


def test_ingest_then_search_returns_the_passage_with_its_page(
        defaults: None, chroma_dir: Path, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    document = _upload(_pdf_source(), EDITION_1, "Brakes")
    tasks.catalog_document_ingest.apply(args=[document.pk], throw=True)
    document.refresh_from_db()
    assert (document.status, document.pages) == (CatalogDocument.Status.INDEXED, 3)
    assert document.chunks >= 3
    result = tool_call(name="catalog_search",
                       arguments={"query": "minimum thickness of the Golf 7 front brake disc"})
    assert result.ok, result.error
    best = result.content["passages"][0]
    assert best["page"] == 2 and best["file"].endswith(".pdf") and "22 mm" in best["text"]
    assert result.for_llm().startswith("Brakes, page 2: ")


def test_re_uploading_replaces_the_old_chunks(
        defaults: None, chroma_dir: Path, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    source = _pdf_source()
    documents.catalog_document_ingest(document=_upload(source, EDITION_1, "Brakes"))
    document = documents.catalog_document_ingest(document=_upload(source, EDITION_2, "Brakes"))
    assert CatalogDocument.objects.count() == 1 and document.pages == 2
    assert vectorstore.count(kind="pdf_catalog", source_id=source.pk) == document.chunks
    texts = [p["text"] for p in tool_call(name="catalog_search", arguments={
        "query": "Golf VII brake disc minimum thickness"}).content["passages"]]
    assert any("23 mm minimum" in t for t in texts)
    assert not any("22 mm minimum" in t or "Spark plugs" in t for t in texts)


@pytest.mark.parametrize(("data", "reason"), [
    (b"this is a text file", "not a PDF file"),
    (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "the PDF cannot be read"),
    (pdf_write([[""]]), "no text layer"),
])
def test_a_broken_pdf_fails_the_task_with_the_reason_on_the_source(
        defaults: None, chroma_dir: Path, settings: Any, tmp_path: Path, data: bytes,
        reason: str) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    source = _pdf_source()
    document = _upload(source, data, "Broken")
    outcome = tasks.catalog_document_ingest.apply(args=[document.pk])
    assert outcome.failed() and isinstance(outcome.result, PdfError)
    document.refresh_from_db()
    source.refresh_from_db()
    assert document.status == CatalogDocument.Status.FAILED and reason in document.error
    assert source.health == ToolSource.Health.FAILING
    assert source.last_error.startswith("Broken: ") and reason in source.last_error


def test_a_truncated_pdf_file_is_refused(defaults: None, chroma_dir: Path, settings: Any,
                                         tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    whole = pdf_write(EDITION_1)
    document = _upload(_pdf_source(), whole[: len(whole) // 3], "Cut")
    with pytest.raises(PdfError, match="Cut: "):
        documents.catalog_document_ingest(document=document)


def _load_knowledge() -> None:
    source = ToolSource.objects.get(kind=ToolSource.Kind.KNOWLEDGE_BASE)
    from toolhub.sampledocs import knowledge_articles

    for article in knowledge_articles():
        documents.knowledge_upsert(source=source, **article)


def _knowledge_answers(question: str, language: str) -> list[str]:
    result = tool_call(name="knowledge_search", arguments={"query": question},
                       context=ToolContext(language=language))
    assert result.ok, result.error
    return [a["title"] for a in result.content["answers"]]


KNOWLEDGE_QUESTIONS = [
    ("When are you open on Saturday?", "en", "Opening hours"),
    ("Can I send back a part I did not use?", "en", "Returns and refunds"),
    ("How much is shipping?", "en", "Delivery and shipping"),
    ("Wann haben Sie am Samstag geöffnet?", "de", "Öffnungszeiten"),
    ("Wie viel Pfand kostet eine Batterie?", "de", "Altbatterien und Altteilpfand"),
]


def test_knowledge_base_search_embedded(defaults: None, chroma_dir: Path) -> None:
    _load_knowledge()
    for question, language, title in KNOWLEDGE_QUESTIONS:
        assert title in _knowledge_answers(question, language)[:3], question
    # Disabling the source takes its tool away.
    ToolSource.objects.filter(kind=ToolSource.Kind.KNOWLEDGE_BASE).update(enabled=False)
    result = tool_call(name="knowledge_search", arguments={"query": "opening hours"})
    assert not result.ok and "switched off" in result.error


@pytest.fixture
def chroma_server(tmp_path: Path, free_port: int, settings: Any) -> Iterator[str]:
    """The real Chroma server from the chromadb package, on loopback."""
    chroma = Path(sys.executable).with_name("chroma")
    server = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
         "--port", str(free_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not start") from None
                time.sleep(0.3)
        settings.CHROMA_URL = url
        vectorstore.reset()
        yield url
    finally:
        server.terminate()
        server.wait(10)
        vectorstore.reset()


def test_knowledge_base_search_through_the_chroma_server(
        defaults: None, chroma_server: str, tmp_path: Path, settings: Any) -> None:
    settings.TOM_CHROMA_DIR = tmp_path / "embedded"
    _load_knowledge()
    # The vectors went to the server's store, not to an embedded one.
    assert any((tmp_path / "server").iterdir())
    assert not settings.TOM_CHROMA_DIR.exists()
    for question, language, title in KNOWLEDGE_QUESTIONS:
        assert title in _knowledge_answers(question, language)[:3], question
    source = ToolSource.objects.get(kind=ToolSource.Kind.KNOWLEDGE_BASE)
    assert vectorstore.count(kind="knowledge_base", source_id=source.pk) >= 18


def test_deleting_a_catalog_in_the_admin_removes_its_chunks(
        defaults: None, chroma_dir: Path, settings: Any, tmp_path: Path) -> None:
    from django.test import Client
    from django.urls import reverse

    from calls.services import supervisor_ensure

    settings.MEDIA_ROOT = tmp_path / "media"
    source = _pdf_source()
    document = documents.catalog_document_ingest(document=_upload(source, EDITION_1, "Brakes"))
    assert vectorstore.count(kind="pdf_catalog", source_id=source.pk) == document.chunks > 0
    _, password = supervisor_ensure(username="sue")
    client = Client()
    assert client.login(username="sue", password=password)
    response = client.post(reverse("admin:toolhub_catalogdocument_delete",
                                   args=[document.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert vectorstore.count(kind="pdf_catalog", source_id=source.pk) == 0
