"""Fixtures for ToolHub: the built-in sources and categories, the sample catalog, and a
Chroma store of the test's own."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps

from toolhub import catalog, sampledocs, vectorstore
from toolhub.catalog import ImportReport

_DEFAULTS = importlib.import_module("toolhub.migrations.0002_default_sources_and_categories")
_GROUP = importlib.import_module("calls.migrations.0002_supervisors_group")
_PERMISSIONS = importlib.import_module("toolhub.migrations.0003_supervisor_permissions")


@pytest.fixture
def defaults(db: None) -> None:
    """What migrations create (sources, categories, the Supervisors group and its
    permissions): transactional tests flush it."""
    _DEFAULTS.create(apps, None)
    _GROUP.create_group(apps, None)
    _PERMISSIONS.grant(apps, None)


@pytest.fixture
def sample_parts(defaults: None) -> ImportReport:
    report = catalog.parts_import_csv(
        text=(sampledocs.DATA / "sample_parts.csv").read_text(encoding="utf-8"))
    assert report.ok, report.errors
    return report


@pytest.fixture
def chroma_dir(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """An embedded Chroma of this test's own (and no CHROMA_URL)."""
    settings.CHROMA_URL = ""
    settings.TOM_CHROMA_DIR = tmp_path / "chroma"
    vectorstore.reset()
    yield settings.TOM_CHROMA_DIR
    vectorstore.reset()
