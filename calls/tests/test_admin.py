from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calls import phone, services
from calls.models import Call, CallerNumber
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
        "view_policyvariant", "add_policyvariant", "change_policyvariant", "view_callreward"}
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
