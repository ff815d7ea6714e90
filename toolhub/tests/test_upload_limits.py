"""The admin takes catalog PDFs and parts CSVs of a bounded size, and nothing else."""

from __future__ import annotations

from html import unescape
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from toolhub.models import CatalogDocument, Part, ToolSource
from toolhub.pdf import pdf_write

pytestmark = pytest.mark.django_db

ADD = "admin:toolhub_catalogdocument_add"
PDF = pdf_write([["Brake discs", "Golf VII front discs: 22 mm minimum thickness."]],
                title="Brakes")


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path, defaults: None) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _upload(client: Client, name: str, data: bytes, title: str = "Brakes") -> str:
    source = ToolSource.objects.get(kind=ToolSource.Kind.PDF_CATALOG)
    response = client.post(reverse(ADD), {"source": source.pk, "title": title,
                                          "file": SimpleUploadedFile(name, data)})
    return unescape(response.content.decode()) if response.status_code == 200 else ""


@pytest.mark.parametrize(("name", "data"), [
    ("catalog.pdf", b"Brake discs: 22 mm minimum\n"),  # a text file with a .pdf name
    ("catalog.html", PDF),  # PDF bytes, but served back as a page from the media folder
    ("catalog.svg", b"%PDF-<svg onload=alert(1)>"),
    ("catalog.exe", b"MZ\x90\x00"),
])
def test_anything_but_a_pdf_is_refused_with_a_form_error(
        admin_client: Client, media: Path, name: str, data: bytes) -> None:
    page = _upload(admin_client, name, data)
    assert "only PDF files can be uploaded (a .pdf starting with %PDF-)" in page
    assert not CatalogDocument.objects.exists()
    assert not media.exists() or not any(media.rglob("catalog.*"))  # nothing was stored


def test_a_pdf_over_the_size_limit_is_refused(admin_client: Client, settings: Any) -> None:
    settings.TOM_UPLOAD_MAX_BYTES = len(PDF) - 1
    page = _upload(admin_client, "catalog.pdf", PDF)
    assert "the limit is" in page and "(TOM_UPLOAD_MAX_BYTES)" in page
    assert not CatalogDocument.objects.exists()
    settings.TOM_UPLOAD_MAX_BYTES = len(PDF)
    assert _upload(admin_client, "catalog.pdf", PDF) == ""  # at the limit: saved
    document = CatalogDocument.objects.get()
    assert document.status == CatalogDocument.Status.PENDING
    with document.file.open("rb") as stored:
        assert stored.read() == PDF


def test_editing_a_document_without_a_new_file_keeps_it(admin_client: Client) -> None:
    assert _upload(admin_client, "catalog.pdf", PDF) == ""
    document = CatalogDocument.objects.get()
    response = admin_client.post(reverse("admin:toolhub_catalogdocument_change",
                                         args=[document.pk]),
                                 {"source": document.source_id, "title": "Brakes 2026"})
    assert response.status_code == 302
    document.refresh_from_db()
    assert document.title == "Brakes 2026" and document.file.name.endswith(".pdf")


def test_a_parts_csv_over_the_size_limit_is_refused(admin_client: Client,
                                                     settings: Any) -> None:
    settings.TOM_UPLOAD_MAX_BYTES = 100
    csv = b"part_number,name\n" + b"TP-1,Brake pad\n" * 20
    response = admin_client.post(reverse("admin:toolhub_part_import_csv"),
                                 {"file": SimpleUploadedFile("parts.csv", csv)})
    assert response.status_code == 200
    assert "the file is over 0.0 MB (TOM_UPLOAD_MAX_BYTES)" in unescape(
        response.content.decode())
    assert not Part.objects.exists()
