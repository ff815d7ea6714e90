"""Load the shipped sample data: parts catalog, knowledge base and a PDF catalog."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from toolhub import catalog, documents, sampledocs, services
from toolhub.models import ToolSource


class Command(BaseCommand):
    help = "Load the sample parts catalog, knowledge base and PDF catalog (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-pdf", action="store_true",
                            help="skip the PDF catalog (it needs the embedding model)")

    def handle(self, *args: Any, **options: Any) -> None:
        report = catalog.parts_import_csv(
            text=(sampledocs.DATA / "sample_parts.csv").read_text(encoding="utf-8"))
        self.stdout.write(f"parts: {report.summary()}")
        knowledge = ToolSource.objects.get(kind=ToolSource.Kind.KNOWLEDGE_BASE,
                                           name="Knowledge base")
        articles = sampledocs.knowledge_articles()
        for article in articles:
            documents.knowledge_upsert(source=knowledge, **article)
        self.stdout.write(f"knowledge base: {len(articles)} articles indexed")
        if not options["no_pdf"]:
            pdf_source = ToolSource.objects.get(kind=ToolSource.Kind.PDF_CATALOG,
                                                name="PDF catalogs")
            document = documents.catalog_document_store(
                source=pdf_source, title=sampledocs.CATALOG_TITLE,
                file_name="tom-parts-catalog-2026.pdf", data=sampledocs.catalog_pdf())
            self.stdout.write(f"PDF catalog: {document.pages} pages, {document.chunks} chunks")
        for source in ToolSource.objects.all():
            checked = services.tool_source_check(source=source)
            self.stdout.write(f"{checked.name}: {checked.health} {checked.last_error}".rstrip())
