"""Shared fixtures: which services this pass runs on, and a clean environment for subprocesses."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parent
# Variables that steer TOM; a subprocess meant to see "no environment" gets none of them.
_TOM_PREFIXES = ("TOM_", "DATABASE_", "REDIS_", "CELERY_", "CHROMA_", "FREESWITCH_", "OLLAMA_")
_TOM_NAMES = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "ALLOW_EGRESS",
              "SECURE_HSTS_SECONDS", "TIME_ZONE", "DJANGO_SETTINGS_MODULE"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("redis") and not settings.REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs REDIS_URL (the PostgreSQL+Redis pass)"))
        if item.get_closest_marker("postgres") and not settings.DATABASE_URL:
            item.add_marker(pytest.mark.skip(reason="needs DATABASE_URL (the PostgreSQL pass)"))


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """The process environment minus everything TOM reads, with a fresh data folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_TOM_PREFIXES) and k not in _TOM_NAMES}
    env["TOM_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def supervisors_group(transactional_db: None) -> None:
    """The Supervisors group and its permissions, as the migrations make them: a
    transactional test's flush removes them (the permissions come back, the group not)."""
    import importlib

    from django.apps import apps

    for module, function in (("calls.migrations.0002_supervisors_group", "create_group"),
                             ("toolhub.migrations.0003_supervisor_permissions", "grant"),
                             ("calls.migrations.0005_supervisors_manage_variants", "grant"),
                             ("calls.migrations.0011_call_listen_recording", "grant")):
        getattr(importlib.import_module(module), function)(apps, None)
