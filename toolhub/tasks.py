"""Celery tasks for ToolHub. Each looks its object up and calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="toolhub.tasks.tool_source_check", acks_late=True, soft_time_limit=60,
             time_limit=90)
def tool_source_check(source_id: int) -> str:
    """Run a source's health check ("check now" in the admin); returns the health."""
    from toolhub.models import ToolSource
    from toolhub.services import tool_source_check as check

    source = ToolSource.objects.filter(pk=source_id).first()
    if source is None:
        return "missing"
    return check(source=source).health


@shared_task(name="toolhub.tasks.catalog_document_ingest", acks_late=True,
             soft_time_limit=600, time_limit=660)
def catalog_document_ingest(document_id: int) -> int:
    """Index an uploaded PDF catalog; a broken PDF fails the task (reason on the source)."""
    from toolhub.documents import catalog_document_ingest as ingest
    from toolhub.models import CatalogDocument

    document = CatalogDocument.objects.filter(pk=document_id).first()
    if document is None:
        return 0
    return ingest(document=document).chunks


@shared_task(name="toolhub.tasks.knowledge_document_index", acks_late=True,
             soft_time_limit=120, time_limit=150)
def knowledge_document_index(document_id: int) -> bool:
    from toolhub.documents import knowledge_document_index as index
    from toolhub.models import KnowledgeDocument

    document = KnowledgeDocument.objects.filter(pk=document_id).first()
    if document is not None:
        index(document=document)
    return document is not None
