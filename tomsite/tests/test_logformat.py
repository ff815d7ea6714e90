from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import override_settings

from tomsite.logformat import ConsoleFormatter, JsonFormatter, RedactFilter, redact_text


@pytest.mark.parametrize("text", [
    "caller +49 30 98765432 said", "from 030/98765432", "0049-30-987-654-32", "(030) 98765432",
])
def test_phone_numbers_are_redacted(text: str) -> None:
    out = redact_text(text)
    assert "98765432" not in out.replace(" ", "").replace("-", "")
    assert "[redacted]" in out


@pytest.mark.parametrize("text", [
    "2026-11-25 14:00:01", "call_id=42 turn=3", "took 1234 ms", "uuid 8f0e7b8e-1111-4c55",
])
def test_ordinary_values_survive(text: str) -> None:
    assert redact_text(text) == text


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("calls.test", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_filter_redacts_pii_fields_and_text() -> None:
    record = _record("call from +4930 98765432", caller="+493098765432", call_id=7,
                     transcript="my number is 030 98765432")
    RedactFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "98765432" not in line
    payload = json.loads(line)
    assert payload["call_id"] == 7 and payload["caller"] == "[redacted]"


def test_filter_lets_pii_through_only_when_allowed() -> None:
    record = _record("call from +4930 98765432")
    with override_settings(TOM_LOG_PII=True):
        RedactFilter().filter(record)
    assert "98765432" in record.getMessage()


def test_console_format_appends_extras() -> None:
    formatter = ConsoleFormatter("%(message)s%(extras)s")
    assert formatter.format(_record("call.ended", call_id=3, status="completed")) == \
        "call.ended call_id=3 status=completed"


def test_uuids_are_not_taken_for_numbers() -> None:
    text = "Task x[94ebd90e-1234-5678-a79e-ff31210c672c] succeeded; caller 030 98765432"
    assert redact_text(text) == \
        "Task x[94ebd90e-1234-5678-a79e-ff31210c672c] succeeded; caller [redacted]"


def _handler_as_configured(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    """A logger whose handler has the filter and a formatter as settings.LOGGING sets them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tomsite.tests.exc.{id(stream)}")
    logger.propagate, logger.handlers = False, [handler]
    return logger, stream


def _fail_with_a_number() -> None:
    caller = "+49 30 98765432"
    raise ValueError(f"caller {caller} is blocked")  # a message that quotes the number


@pytest.mark.parametrize("formatter", [
    ConsoleFormatter(settings.LOGGING["formatters"]["console"]["format"]), JsonFormatter(),
], ids=["console", "json"])
def test_tracebacks_go_through_the_redaction(formatter: logging.Formatter) -> None:
    logger, stream = _handler_as_configured(formatter)
    try:
        _fail_with_a_number()
    except ValueError:
        logger.exception("call.failed", extra={"call_id": 5})
    logger.error("where.now", stack_info=True, extra={"note": "030 98765432"})
    out = stream.getvalue()
    assert "Traceback" in out and "_fail_with_a_number" in out  # the traceback is there
    assert "ValueError: caller [redacted] is blocked" in out.replace("\\n", "\n")
    assert "98765432" not in out
