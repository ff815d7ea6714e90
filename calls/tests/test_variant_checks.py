"""The hook through which other apps tell the policy variant form what cannot run on this
server, without calls importing them (../shared/STYLE.md, "Which way the imports run")."""

from __future__ import annotations

import json
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from calls import variants
from calls.models import PolicyVariant
from calls.variants import VariantParameters, variant_check_register


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[VariantParameters]:
    """Registers a check that refuses fast speech; returns the parameters it was shown."""
    monkeypatch.setattr(variants, "_checks", list(variants._checks))  # restored after
    seen: list[VariantParameters] = []

    def too_fast(*, params: VariantParameters) -> list[str]:
        seen.append(params)
        return ["speaking_rate: this server cannot speak faster than 1.0"] \
            if params.speaking_rate < 1.0 else []

    variant_check_register(check=too_fast)
    variant_check_register(check=too_fast)  # ready() may run twice: still asked once
    return seen


def _add(admin_client: Client, name: str, parameters: dict[str, object]) -> str:
    response = admin_client.post(reverse("admin:calls_policyvariant_add"), {
        "name": name, "description": "", "enabled": "on",
        "parameters": json.dumps(parameters)})
    return unescape(response.content.decode()) if response.status_code == 200 else ""


@pytest.mark.django_db
def test_the_variant_form_shows_what_a_registered_check_refuses(
        admin_client: Client, checks: list[VariantParameters]) -> None:
    page = _add(admin_client, "hasty", {"speaking_rate": 0.6})
    assert page.count("speaking_rate: this server cannot speak faster than 1.0") == 1
    assert not PolicyVariant.objects.filter(name="hasty").exists()
    assert [p.speaking_rate for p in checks] == [0.6]  # parsed parameters, asked once

    assert _add(admin_client, "calm", {"speaking_rate": 1.2}) == ""  # saved, redirected
    assert PolicyVariant.objects.get(name="calm").parameters["speaking_rate"] == 1.2


@pytest.mark.django_db
def test_parameters_pydantic_refuses_never_reach_the_checks(
        admin_client: Client, checks: list[VariantParameters]) -> None:
    page = _add(admin_client, "broken", {"speaking_rate": 9})
    assert "speaking_rate: Input should be less than or equal to 2" in page
    assert checks == []
    assert not PolicyVariant.objects.filter(name="broken").exists()
