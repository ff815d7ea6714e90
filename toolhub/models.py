"""Tool sources and the data the tools answer from.

A ``ToolSource`` is what a supervisor switches on and off: its kind decides which tools
the LLM sees. The parts catalog lives in the database; PDF catalogs and knowledge-base
documents are stored here and indexed in ChromaDB (see ``toolhub.vectorstore``).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ToolSource(models.Model):
    class Kind(models.TextChoices):
        PARTS = "parts", "Parts catalog (Autoteilepilot)"
        PDF_CATALOG = "pdf_catalog", "PDF catalogs"
        KNOWLEDGE_BASE = "knowledge_base", "Knowledge base"

    class Health(models.TextChoices):
        UNKNOWN = "unknown", "Not checked"
        OK = "ok", "OK"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True,
                              help_text="Kind-specific settings, e.g. result limits.")
    enabled = models.BooleanField(
        default=True, help_text="Disabled sources' tools leave the LLM's list on the next turn.")
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_detail = models.JSONField(default=dict, blank=True,
                                   help_text="What the last check measured.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Vehicle(models.Model):
    make = models.CharField(max_length=40)
    model = models.CharField(max_length=60)
    generation = models.CharField(max_length=20, blank=True,
                                  help_text='As the trade says it: "VII", "B8", "F30".')
    year_from = models.PositiveSmallIntegerField(null=True, blank=True)
    year_to = models.PositiveSmallIntegerField(null=True, blank=True)
    aliases = models.CharField(
        max_length=200, blank=True,
        help_text='Other names callers use, comma separated: "Dreier, 3er".')

    class Meta:
        ordering = ["make", "model", "year_from"]
        constraints = [models.UniqueConstraint(fields=["make", "model", "generation"],
                                               name="toolhub_vehicle_unique")]

    def __str__(self) -> str:
        years = f" ({self.year_from}-{self.year_to or ''})" if self.year_from else ""
        return f"{self.make} {self.model} {self.generation}".strip() + years


class PartCategory(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name_en = models.CharField(max_length=60)
    name_de = models.CharField(max_length=60)
    synonyms = models.CharField(max_length=300, blank=True,
                                help_text="Other words for it in any language, comma separated.")

    class Meta:
        ordering = ["name_en"]
        verbose_name_plural = "part categories"

    def __str__(self) -> str:
        return self.name_en


class Part(models.Model):
    part_number = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    name_de = models.CharField(max_length=120, blank=True)
    category = models.ForeignKey(PartCategory, on_delete=models.PROTECT, related_name="parts")
    brand = models.CharField(max_length=40, blank=True)
    oem_numbers = models.JSONField(default=list, blank=True)
    price = models.DecimalField(max_digits=9, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    stock = models.PositiveIntegerField(default=0)
    vehicles = models.ManyToManyField(Vehicle, related_name="parts", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["part_number"]

    def __str__(self) -> str:
        return f"{self.part_number} {self.name}"


class CatalogDocument(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for indexing"
        INDEXED = "indexed", "Indexed"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(ToolSource, on_delete=models.CASCADE, related_name="documents",
                               limit_choices_to={"kind": ToolSource.Kind.PDF_CATALOG})
    title = models.CharField(max_length=120)
    file = models.FileField(upload_to="catalogs/%Y/%m/")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    pages = models.PositiveIntegerField(default=0)
    chunks = models.PositiveIntegerField(default=0)
    uploaded_at = models.DateTimeField(default=timezone.now)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["source", "title"],
                                               name="toolhub_catalog_title_unique")]

    def __str__(self) -> str:
        return self.title


class KnowledgeDocument(models.Model):
    source = models.ForeignKey(ToolSource, on_delete=models.CASCADE, related_name="articles",
                               limit_choices_to={"kind": ToolSource.Kind.KNOWLEDGE_BASE})
    title = models.CharField(max_length=120)
    language = models.CharField(max_length=8, default="en")
    body = models.TextField()
    indexed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["source", "title", "language"],
                                               name="toolhub_knowledge_unique")]

    def __str__(self) -> str:
        return self.title
