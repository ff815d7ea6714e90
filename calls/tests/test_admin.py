from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calls import phone, services
from calls.models import Call, CallerNumber, PolicyVariant
from calls.tests.factories import call_create

pytestmark = pytest.mark.django_db

RAW = "+49 30 98765432"
RAW_FORMS = ("+49 30 98765432", "+493098765432", "03098765432", "98765432", "030 98765432")
CHANGELIST = "admin:calls_call_changelist"


@pytest.fixture
def supervisor_client() -> Client:
    _, password = services.supervisor_ensure(username="sue")
    client = Client()
    assert client.login(username="sue", password=password)
    return client


def _assert_no_raw_number(html: str) -> None:
    for form in RAW_FORMS:
        assert form not in html, f"raw number {form!r} rendered in an admin page"


def _follow_search(client: Client, url_name: str, typed: str) -> tuple[str, str]:
    """Search as a supervisor types; return the redirect target and the final page."""
    response = client.get(reverse(url_name), {"q": typed})
    assert response.status_code == 302
    location = response["Location"]
    page = client.get(location)
    assert page.status_code == 200
    return location, page.content.decode()


def test_call_list_shows_status_duration_turns_and_short_hash(admin_client: Client) -> None:
    call = call_create(caller=RAW, turns=2)
    services.call_end(call=call, reason=Call.EndReason.CALLER_HANGUP)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert call.uuid in html
    assert "Caller hung up" in html
    assert call.caller_phone_hash is not None and call.caller_phone_hash.short in html
    assert re.search(r'class="field-turn_count">2<', html)
    _assert_no_raw_number(html)


@pytest.mark.parametrize("typed", ["+49 30 98765432", "030 98765432", "0049 30 987 654 32"])
def test_search_by_raw_number_finds_its_calls_by_hash_only(admin_client: Client,
                                                           typed: str) -> None:
    mine = call_create(caller=RAW)
    other = call_create(caller="+49 89 1112223")
    with CaptureQueriesContext(connection) as queries:
        location, html = _follow_search(admin_client, CHANGELIST, typed)
    query_string = parse_qs(urlparse(location).query)["q"][0]
    expected = phone.phone_hash(RAW)
    assert expected is not None and query_string == "hash:" + expected.digest
    assert mine.uuid in html and other.uuid not in html
    _assert_no_raw_number(html)
    digits = re.sub(r"\D", "", typed)
    for query in queries.captured_queries:
        assert digits[-8:] not in query["sql"], "a raw number reached the database"


def test_search_by_callee_number(admin_client: Client) -> None:
    call = call_create(caller="anonymous", callee="+49 40 5550100")
    _, html = _follow_search(admin_client, CHANGELIST, "040 5550100")
    assert call.uuid in html


def test_free_text_search_still_matches_uuid(admin_client: Client) -> None:
    call = call_create()
    response = admin_client.get(reverse(CHANGELIST), {"q": call.uuid[:13]})
    assert response.status_code == 200 and call.uuid in response.content.decode()


def test_call_detail_shows_turns_with_latencies_read_only(admin_client: Client) -> None:
    call = call_create(caller=RAW, turns=2,
                       metadata={"campaign": "spring", "from": RAW})
    response = admin_client.get(reverse("admin:calls_call_change", args=[call.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "question 1" in html and "answer 0" in html
    assert "LLM first token ms" in html and ">640<" in html
    assert 'name="supervisor_note"' in html  # the one editable field
    assert 'name="status"' not in html and 'name="turns-0-caller_text"' not in html
    assert "spring" in html
    _assert_no_raw_number(html)


def test_caller_number_list_and_search(admin_client: Client) -> None:
    call_create(caller=RAW)
    call_create(caller="+49 89 1112223")
    list_html = admin_client.get(reverse("admin:calls_callernumber_changelist")).content.decode()
    _assert_no_raw_number(list_html)
    _, html = _follow_search(admin_client, "admin:calls_callernumber_changelist", RAW)
    assert "1 caller number" in html
    _assert_no_raw_number(html)


def test_block_action_uses_the_service(admin_client: Client) -> None:
    call_create(caller=RAW)
    row = CallerNumber.objects.get()
    response = admin_client.post(reverse("admin:calls_callernumber_changelist"),
                                 {"action": "block", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.blocked and row.blocked_reason


def test_supervisors_group_can_view_and_change_calls_but_never_delete_them() -> None:
    group = Group.objects.get(name=services.SUPERVISORS_GROUP)
    codenames = set(group.permissions.filter(content_type__app_label="calls")
                    .values_list("codename", flat=True))
    assert codenames == {f"{a}_{m}" for a in ("view", "change")
                         for m in ("call", "callturn", "callernumber")} | {
        "view_policyvariant", "add_policyvariant", "change_policyvariant", "view_callreward",
        "listen_recording"}
    assert not Permission.objects.filter(group=group, content_type__app_label="calls",
                                         codename__startswith="delete_").exists()


def test_supervisor_sees_calls_and_cannot_delete_or_add(supervisor_client: Client) -> None:
    call = call_create(turns=1)
    assert supervisor_client.get(reverse(CHANGELIST)).status_code == 200
    change_url = reverse("admin:calls_call_change", args=[call.pk])
    assert supervisor_client.get(change_url).status_code == 200
    response = supervisor_client.post(change_url, {"supervisor_note": "caller was confused",
                                                   "turns-TOTAL_FORMS": "1",
                                                   "turns-INITIAL_FORMS": "1"})
    assert response.status_code == 302
    call.refresh_from_db()
    assert call.supervisor_note == "caller was confused"
    delete_url = reverse("admin:calls_call_delete", args=[call.pk])
    assert supervisor_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Call.objects.filter(pk=call.pk).exists()
    assert supervisor_client.get(reverse("admin:calls_call_add")).status_code == 403
    # Users and groups are not a supervisor's business.
    assert supervisor_client.get(reverse("admin:auth_user_changelist")).status_code == 403


def _login(client: Client, password: str) -> HttpResponse:
    return client.post(reverse("admin:login"), {"username": "sue", "password": password,
                                                "next": reverse(CHANGELIST)})


def test_repeated_bad_logins_lock_the_account_even_for_the_right_password(
        settings: Any) -> None:
    _, password = services.supervisor_ensure(username="sue")
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(getattr(settings, "AXES_FAILURE_LIMIT", 5) - 1):
        response = _login(attacker, "guess")
        assert response.status_code == 200 and "Please enter the correct" in \
            response.content.decode()  # the ordinary wrong-password form
    assert _login(attacker, "guess").status_code == 429  # the limit-th failure locks
    locked = _login(attacker, password)
    assert locked.status_code == 429
    assert "too many login attempts" in locked.content.decode().lower()
    assert "_auth_user_id" not in attacker.session
    # A forwarding header that no trusted proxy set does not make a new client.
    spoofed = _login(Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="192.0.2.1"),
                     password)
    assert spoofed.status_code == 429
    # Locked is the pair (username, address): sue at her own desk still gets in.
    desk = Client(REMOTE_ADDR="192.0.2.44")
    assert _login(desk, password).status_code == 302
    assert desk.get(reverse(CHANGELIST)).status_code == 200


def _variant_form_errors(admin_client: Client, name: str, parameters: dict[str, str]) -> str:
    response = admin_client.post(reverse("admin:calls_policyvariant_add"), {
        "name": name, "description": "", "enabled": "on",
        "parameters": json.dumps(parameters)})
    return response.content.decode() if response.status_code == 200 else ""


@pytest.fixture
def models_dir(settings: Any, tmp_path: Path) -> Path:
    settings.TOM_DATA_DIR = tmp_path / "data"
    folder = tmp_path / "data" / "models"
    (folder / "whisper-de").mkdir(parents=True)
    (folder / "whisper-de" / "model.bin").write_bytes(b"\0")
    (folder / "thorsten.onnx").write_bytes(b"\0")
    (folder / "thorsten.onnx.json").write_text("{}")
    return folder


@pytest.mark.parametrize(("field", "value"), [
    ("piper_voice", "/etc/passwd"),
    ("piper_voice", "{models}/../../../etc/passwd"),
    ("piper_voice", "{models}/escape.onnx"),  # a link out of the folder
    ("stt_model", "/etc"),
    ("stt_model", "{models}/../outside"),
])
def test_a_variant_may_name_only_models_inside_the_models_folder(
        admin_client: Client, models_dir: Path, tmp_path: Path, field: str,
        value: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.bin").write_bytes(b"\0")
    (outside / "voice.onnx").write_bytes(b"\0")
    (outside / "voice.onnx.json").write_text("{}")
    (models_dir / "escape.onnx").symlink_to(outside / "voice.onnx")
    (models_dir / "escape.onnx.json").symlink_to(outside / "voice.onnx.json")
    value = value.format(models=models_dir)
    page = _variant_form_errors(admin_client, "sneaky", {field: value})
    assert f"{field}: {value} is outside the models folder" in unescape(page)
    assert not PolicyVariant.objects.filter(name="sneaky").exists()


def test_a_variant_may_name_models_in_the_folder_and_the_aliases(
        admin_client: Client, models_dir: Path) -> None:
    params = {"piper_voice": str(models_dir / "thorsten.onnx"),
              "stt_model": str(models_dir / "whisper-de")}
    assert _variant_form_errors(admin_client, "german", params) == ""  # saved, redirected
    assert PolicyVariant.objects.get(name="german").parameters["piper_voice"] == \
        params["piper_voice"]
    page = _variant_form_errors(admin_client, "no-config",
                                {"piper_voice": str(models_dir / "whisper-de" / "model.bin")})
    assert "is not a Piper voice" in unescape(page)
