"""The supervisors' ToolHub: sources with their health, the parts catalog and documents.

Slow work (health checks, PDF indexing) goes to Celery after the transaction commits,
so the admin answers at once and the worker sees the saved row.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from toolhub import catalog, documents, tasks
from toolhub.models import (
    CatalogDocument,
    KnowledgeDocument,
    Part,
    PartCategory,
    ToolSource,
    Vehicle,
)
from toolhub.pdf import PdfError

_HEALTH_COLOURS = {"ok": "#2e7d32", "failing": "#ba2121", "unknown": "#8a6d3b"}


@admin.register(ToolSource)
class ToolSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "health_badge", "last_checked_at", "error_short")
    list_filter = ("kind", "enabled", "health")
    list_editable = ("enabled",)
    readonly_fields = ("health", "last_checked_at", "last_error", "last_detail")
    actions = ("check_now",)

    @admin.display(description="health", ordering="health")
    def health_badge(self, source: ToolSource) -> str:
        return format_html('<b style="color:{}">{}</b>', _HEALTH_COLOURS[source.health],
                           source.get_health_display())

    @admin.display(description="last error")
    def error_short(self, source: ToolSource) -> str:
        return source.last_error[:80]

    @admin.action(description="Check now (runs in the worker)", permissions=["change"])
    def check_now(self, request: HttpRequest, queryset: QuerySet[ToolSource]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for source_id in ids:
            transaction.on_commit(partial(tasks.tool_source_check.delay, source_id))
        self.message_user(request, f"Checking {len(ids)} source(s); reload for the result.",
                          messages.INFO)


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "make", "model", "generation", "year_from", "year_to")
    list_filter = ("make",)
    search_fields = ("make", "model", "generation", "aliases")


@admin.register(PartCategory)
class PartCategoryAdmin(admin.ModelAdmin):
    list_display = ("name_en", "name_de", "slug", "synonyms")
    search_fields = ("name_en", "name_de", "synonyms")
    prepopulated_fields = {"slug": ("name_en",)}


class CsvImportForm(forms.Form):
    file = forms.FileField(help_text="UTF-8 CSV with the columns of toolhub/data/"
                                     "sample_parts.csv; one row per part and vehicle.")

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        limit = settings.TOM_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"the file is over {limit / 2**20:.1f} MB "
                                        "(TOM_UPLOAD_MAX_BYTES)")
        try:
            return str(upload.read().decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(f"not UTF-8 text (byte {exc.start})") from exc


@admin.register(Part)
class PartAdmin(admin.ModelAdmin):
    list_display = ("part_number", "name", "category", "brand", "price", "currency", "stock")
    list_filter = ("category", "brand")
    search_fields = ("part_number", "name", "name_de", "oem_numbers")
    filter_horizontal = ("vehicles",)
    change_list_template = "admin/toolhub/part/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [path("import-csv/", self.admin_site.admin_view(self.import_csv),
                     name="toolhub_part_import_csv"), *super().get_urls()]

    def import_csv(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:toolhub_part_changelist"))
        form = CsvImportForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            report = catalog.parts_import_csv(text=form.cleaned_data["file"])
            if report.ok:
                self.message_user(request, report.summary(), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:toolhub_part_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "report": report,
                   "opts": self.model._meta, "title": "Import parts from CSV"}
        return TemplateResponse(request, "admin/toolhub/part/import_csv.html", context)


class IndexedDocumentAdmin(admin.ModelAdmin):
    """Deleting a document also deletes its chunks from ChromaDB."""

    def forget(self, document_id: int) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        document_id = obj.pk
        super().delete_model(request, obj)
        self.forget(document_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        for document_id in ids:
            self.forget(document_id)


class CatalogDocumentForm(forms.ModelForm):
    class Meta:
        model = CatalogDocument
        fields = ("source", "title", "file")

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        if isinstance(upload, UploadedFile):  # a new upload, not the stored file
            head = upload.read(8)
            upload.seek(0)
            try:
                documents.catalog_upload_check(name=upload.name or "", size=upload.size or 0,
                                               head=head)
            except PdfError as exc:
                raise forms.ValidationError(str(exc)) from None
        return upload


@admin.register(CatalogDocument)
class CatalogDocumentAdmin(IndexedDocumentAdmin):
    form = CatalogDocumentForm
    list_display = ("title", "source", "status", "pages", "chunks", "uploaded_at", "indexed_at")
    list_filter = ("status", "source")
    readonly_fields = ("status", "error", "pages", "chunks", "indexed_at")
    actions = ("reindex",)

    def forget(self, document_id: int) -> None:
        documents.catalog_document_forget(document_id=document_id)

    def save_model(self, request: HttpRequest, obj: CatalogDocument, form: Any,
                   change: bool) -> None:
        if "file" in form.changed_data:  # a re-upload: index the new edition
            obj.status, obj.error = CatalogDocument.Status.PENDING, ""
        super().save_model(request, obj, form, change)
        if "file" in form.changed_data:
            transaction.on_commit(lambda: tasks.catalog_document_ingest.delay(obj.pk))

    @admin.action(description="Index again", permissions=["change"])
    def reindex(self, request: HttpRequest, queryset: QuerySet[CatalogDocument]) -> None:
        for document_id in queryset.values_list("pk", flat=True):
            transaction.on_commit(partial(tasks.catalog_document_ingest.delay, document_id))
        self.message_user(request, "Indexing in the worker; reload for the result.")


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(IndexedDocumentAdmin):
    list_display = ("title", "language", "source", "updated_at", "indexed_at")
    list_filter = ("language", "source")
    search_fields = ("title", "body")
    readonly_fields = ("indexed_at",)

    def forget(self, document_id: int) -> None:
        documents.knowledge_document_forget(document_id=document_id)

    def save_model(self, request: HttpRequest, obj: KnowledgeDocument, form: Any,
                   change: bool) -> None:
        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: tasks.knowledge_document_index.delay(obj.pk))
