from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from calls import phone, selectors, services
from calls.models import Call, CallerNumber
from calls.tests.factories import call_create

pytestmark = pytest.mark.django_db

RAW = "+49 30 98765432"
# Every way the number could leak: as typed, E.164, national, and its subscriber digits.
RAW_FORMS = ("+49 30 98765432", "+493098765432", "03098765432", "98765432")

KEY_NEW = "rotated-key-" + "n" * 40
KEY_OLD = "original-key-" + "o" * 40


def _all_table_text() -> str:
    """Every cell of every table in the database, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(str(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_call_start_stores_hashes_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call = services.call_start(
        uuid="8f0e7b8e-1111-4c55-9d3e-0123456789ab", caller=RAW, callee="+49 40 555 0100",
        language="de",
        metadata={"caller_id_name": "x", "from": RAW, "sip_from_user": "03098765432",
                  "campaign": "spring", "note": "call back on 030 98765432",
                  "nested": {"agent": "tom", "cb": "+493098765432"}, "queue": 7},
    )
    services.call_answer(call=call)
    services.call_turn_record(call=call, caller_text="brake pads", agent_text="sure")
    services.call_end(call=call, reason=Call.EndReason.CALLER_HANGUP)

    expected = phone.phone_hash(RAW)
    assert expected is not None
    assert (call.caller_hash, call.caller_hash_key) == (expected.digest, expected.key_id)
    assert call.metadata == {"campaign": "spring", "nested": {"agent": "tom"}, "queue": 7}
    table_text = _all_table_text()
    assert expected.digest in table_text  # the scan does see the call's row
    for form in RAW_FORMS:
        assert form not in table_text, f"raw number {form!r} stored in the database"
    for record in caplog.records:
        line = f"{record.getMessage()} {record.__dict__}"
        for form in RAW_FORMS:
            assert form not in line, f"raw number {form!r} in log record {record.name}"


def test_caller_number_counts_calls_from_any_format() -> None:
    call_create(caller="+49 30 98765432")
    call_create(caller="030 98765432")
    call_create(caller="sip:+493098765432@pbx")
    assert CallerNumber.objects.count() == 1
    row = CallerNumber.objects.get()
    assert row.call_count == 3
    assert Call.objects.filter(caller=row).count() == 3


def test_withheld_caller_has_no_caller_row() -> None:
    call = call_create(caller="anonymous")
    assert call.caller is None and call.caller_hash == ""
    assert CallerNumber.objects.count() == 0


def test_key_rotation_keeps_old_calls_findable_and_rekeys_returning_callers() -> None:
    with override_settings(TOM_PHONE_HASH_KEY=KEY_OLD, TOM_PHONE_HASH_OLD_KEYS=[]):
        old_call = call_create(caller=RAW)
        old_key_id = phone.current_key_id()
    with override_settings(TOM_PHONE_HASH_KEY=KEY_NEW, TOM_PHONE_HASH_OLD_KEYS=[KEY_OLD]):
        new_key_id = phone.current_key_id()
        # Look-ups try every active key: the old call is found by the raw number.
        assert list(selectors.call_list_for_phone(raw=RAW)) == [old_call]
        new_call = call_create(caller=RAW)
        assert new_call.caller_hash_key == new_key_id
        row = CallerNumber.objects.get()
        # Re-keyed to the newest key while the raw number was at hand.
        assert (row.key_id, row.call_count) == (new_key_id, 2)
        assert set(selectors.call_list_for_phone(raw=RAW)) == {old_call, new_call}
        assert selectors.caller_number_get(raw=RAW) == row
    assert old_key_id != new_key_id
    with override_settings(TOM_PHONE_HASH_KEY=KEY_NEW, TOM_PHONE_HASH_OLD_KEYS=[]):
        # Retiring the old key makes hashes made under it unsearchable, as intended.
        assert list(selectors.call_list_for_phone(raw=RAW)) == [new_call]


def test_call_start_is_idempotent_per_uuid() -> None:
    first = services.call_start(uuid="abc", caller=RAW)
    second = services.call_start(uuid="abc", caller=RAW)
    assert first.pk == second.pk
    assert CallerNumber.objects.get().call_count == 1


def test_call_end_sets_duration_once() -> None:
    call = call_create()
    ended_at = call.started_at + timedelta(seconds=42)
    services.call_end(call=call, reason=Call.EndReason.CALLER_HANGUP, ended_at=ended_at)
    services.call_end(call=call, reason=Call.EndReason.SERVER_ERROR, failed=True)
    call.refresh_from_db()
    assert call.status == Call.Status.COMPLETED
    assert call.end_reason == Call.EndReason.CALLER_HANGUP
    assert call.duration == timedelta(seconds=42)


def test_call_end_rejects_unknown_reason() -> None:
    call = call_create()
    with pytest.raises(ValueError, match="not a valid"):
        services.call_end(call=call, reason="because")


def test_turns_are_numbered_in_order_with_timings() -> None:
    call = call_create(turns=3)
    turns = list(call.turns.all())
    assert [t.index for t in turns] == [0, 1, 2]
    assert turns[0].e2e_ms == 640 and turns[0].stt_ms == 120


def test_reaper_ends_only_stale_open_calls() -> None:
    now = timezone.now()
    stale = call_create(started_at=now - timedelta(hours=5))
    fresh = call_create(started_at=now - timedelta(minutes=5))
    done = call_create(started_at=now - timedelta(hours=6))
    services.call_end(call=done, reason=Call.EndReason.CALLER_HANGUP,
                      ended_at=now - timedelta(hours=5))
    assert services.calls_reap_stale(older_than=timedelta(hours=2), now=now) == 1
    assert services.calls_reap_stale(older_than=timedelta(hours=2), now=now) == 0
    stale.refresh_from_db(), fresh.refresh_from_db(), done.refresh_from_db()
    assert (stale.status, stale.end_reason) == (Call.Status.FAILED, Call.EndReason.STALE)
    assert fresh.status == Call.Status.ACTIVE
    assert done.end_reason == Call.EndReason.CALLER_HANGUP


def test_metadata_cleaning_drops_numbers_at_any_depth() -> None:
    sid = "5b1c0a2e-1234-5678-9012-3456789abcde"  # digit groups, but a UUID: kept
    cleaned = services.call_metadata_clean(metadata={
        "callSid": sid, "to": "+4940555", "mixType": "mono", "sampleRate": 8000,
        "list": ["0170 1234567", "ok"], "account": 4915112345678, "direction": "inbound",
    })
    assert cleaned == {"callSid": sid, "mixType": "mono", "sampleRate": 8000,
                       "list": ["ok"], "direction": "inbound"}


def test_supervisor_ensure_resets_password() -> None:
    user, password = services.supervisor_ensure(username="anna")
    again, password2 = services.supervisor_ensure(username="anna")
    assert user.pk == again.pk and password != password2
    again.refresh_from_db()
    assert again.check_password(password2) and again.is_staff
    assert again.groups.filter(name=services.SUPERVISORS_GROUP).exists()


@pytest.mark.django_db
def test_a_turn_keeps_the_raw_and_the_corrected_caller_text() -> None:
    call = call_create()
    turn = services.call_turn_record(call=call, caller_text="brake pads for a Golf VII",
                                     caller_text_raw="break pads for a golf sieben",
                                     agent_text="TP-10098")
    turn.refresh_from_db()
    assert (turn.caller_text, turn.caller_text_raw) == ("brake pads for a Golf VII",
                                                       "break pads for a golf sieben")


@pytest.mark.parametrize(("said", "stored"), [
    ("call me back on 030 1234 5678 please", "call me back on [number] please"),
    ("meine Nummer ist +49 (0)171 2345678.", "meine Nummer ist [number]."),
    ("0 3 0 1 2 3 4 5 6 7", "[number]"),  # Whisper writing digits read out one by one
    ("0, 1, 7, 1, 2, 3, 4, 5, 6, 7.", "[number]."),
    ("zero one seven one two three four five six", "[number]"),
    ("null eins sieben eins zwei drei vier fünf", "[number]"),
    ("(030) 123-4567 or 030.123.4567", "[number] or [number]"),
])
def test_phone_numbers_a_caller_reads_out_are_not_stored(said: str, stored: str) -> None:
    call = call_create()
    turn = services.call_turn_record(call=call, caller_text=said, caller_text_raw=said,
                                     agent_text="noted")
    turn.refresh_from_db()
    assert (turn.caller_text, turn.caller_text_raw) == (stored, stored)


@pytest.mark.parametrize("said", [
    "Is TP-12493 in stock?", "the part TP-1234567 for 49.99 euros", "it costs 1.299,00 €",
    "parts 12493, 12494 and 10098", "I need one brake pad and two discs",
    "on 30.11.2026 at 14:30", "the Golf VII from 2014 has 150000 km",
    "VIN WVWZZZ1JZXW000001",
])
def test_part_numbers_prices_and_dates_survive_redaction(said: str) -> None:
    turn = services.call_turn_record(call=call_create(), caller_text=said, agent_text="ok")
    turn.refresh_from_db()
    assert turn.caller_text == said


def test_caller_number_redaction_can_be_turned_off_and_tuned() -> None:
    call = call_create()
    with override_settings(TOM_REDACT_CALLER_NUMBERS=False):
        kept = services.call_turn_record(call=call, caller_text="030 1234567", agent_text="")
    with override_settings(TOM_REDACT_MIN_DIGITS=8):
        short = services.call_turn_record(call=call, caller_text="123 4567 or 1234 5678",
                                          agent_text="")
    assert kept.caller_text == "030 1234567"
    assert short.caller_text == "123 4567 or [number]"  # 7 digits pass, 8 do not


PARTY_KEYS = ("callerName", "caller_name", "CallerIdNumber", "ani", "ANI", "dnis",
              "from_display", "originator", "Caller-Caller-ID-Number", "sip_req_user",
              "P-Asserted-Identity", "remote_party_id", "callerid", "destination_number",
              "msisdn", "fromUri", "display_name", "email")
HARMLESS_KEYS = ("sampleRate", "mixType", "direction", "language", "encoding", "callSid",
                 "uuid", "campaign", "queue", "codec", "channels", "Core-UUID", "story")


def test_party_keys_are_matched_by_their_words_in_any_spelling() -> None:
    metadata = dict.fromkeys(PARTY_KEYS, "Anna Schmidt")  # not number-shaped: key decides
    metadata |= dict.fromkeys(HARMLESS_KEYS, "x")
    cleaned = services.call_metadata_clean(metadata={**metadata, "nested": dict(metadata)})
    assert set(cleaned) == {*HARMLESS_KEYS, "nested"}
    assert set(cleaned["nested"]) == set(HARMLESS_KEYS)


def test_a_turn_keeps_its_waterfall_and_the_admin_shows_it_in_a_line() -> None:
    from django.contrib import admin

    from calls.admin import CallTurnInline

    call = services.call_start(uuid="0f0e7b8e-2222-4c55-9d3e-0123456789ab", caller=RAW,
                               callee="", language="en")
    fall = {"stt_start": 250, "turn_start": 451, "stt_done": 655, "llm_first_text": 980,
            "first_clause": 1384, "first_audio_sent": 1644}
    turn = services.call_turn_record(call=call, caller_text="hours?", agent_text="9 to 5",
                                     waterfall=fall)
    turn.refresh_from_db()
    assert turn.waterfall == fall
    inline = CallTurnInline(Call, admin.site)
    assert inline.stages(turn) == "STT 655 · turn 451 · LLM 980 · clause 1384 · audio 1644"
    assert inline.stages(services.call_turn_record(call=call, caller_text="a",
                                                   agent_text="b")) == "-"
