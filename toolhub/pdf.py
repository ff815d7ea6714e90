"""PDF text in, page-referenced chunks out; and a small PDF writer for sample catalogs.

``pdf_pages`` reads text page by page with pypdf. ``chunk_page`` cuts a page into
passages of a few sentences, overlapping by one, so an answer split across a sentence
boundary is still found whole. ``pdf_write`` makes real text PDFs (Helvetica,
WinAnsi, one text object per line) for the shipped sample catalog and the tests;
nothing in the stack writes PDFs and this needs no more than the PDF 1.4 basics.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

CHUNK_CHARS = 600
MAX_PAGES = 2000


class PdfError(ValueError):
    """The file is not a PDF we can read; the message says why, for the supervisor."""


@dataclass(frozen=True, slots=True)
class Chunk:
    page: int  # 1-based, as printed
    index: int
    text: str


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page; raises ``PdfError`` for broken, encrypted or empty files."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.startswith(b"%PDF-"):
        raise PdfError("not a PDF file (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise PdfError("the PDF is encrypted; upload it without a password")
        if len(reader.pages) > MAX_PAGES:
            raise PdfError(f"the PDF has {len(reader.pages)} pages; the limit is {MAX_PAGES}")
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise PdfError(f"the PDF cannot be read: {exc}") from exc
    if not any(p.strip() for p in pages):
        raise PdfError("the PDF has no text layer (scanned images need OCR first)")
    return pages


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")  # sentences, or lines in tables and lists


def chunk_page(text: str, *, page: int, size: int = CHUNK_CHARS) -> list[Chunk]:
    sentences = [s.strip() for s in _SENTENCE.split(re.sub(r"[ \t]+", " ", text)) if s.strip()]
    chunks: list[Chunk] = []
    current: list[str] = []
    for sentence in sentences:
        if current and sum(len(s) + 1 for s in current) + len(sentence) > size:
            chunks.append(Chunk(page=page, index=len(chunks), text=" ".join(current)))
            current = current[-1:] if len(current[-1]) < size // 3 else []
        current.append(sentence[: size * 2])
    if current:
        chunks.append(Chunk(page=page, index=len(chunks), text=" ".join(current)))
    return chunks


def pdf_chunks(data: bytes) -> tuple[int, list[Chunk]]:
    pages = pdf_pages(data)
    return len(pages), [c for n, text in enumerate(pages, start=1)
                        for c in chunk_page(text, page=n)]


def _escape(line: str) -> bytes:
    encoded = line.encode("cp1252", errors="replace")
    return encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_write(pages: list[list[str]], *, title: str = "") -> bytes:
    """A text PDF with one A4 page per list of lines (about 60 lines fit a page)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in once the page objects are numbered
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    kids = []
    for lines in pages:
        body = b"BT /F1 10 Tf 12 TL 50 800 Td " + b" ".join(
            b"(" + _escape(line) + b") Tj T*" for line in lines) + b" ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
        content = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content)
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    if title:
        objects.append(b"<< /Title (" + _escape(title) + b") >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out.write(b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, info, xref))
    return out.getvalue()
