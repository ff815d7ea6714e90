"""Log formatting for TOM: ``key=value`` on a console, one JSON object per line for shippers.

Log calls name an event and pass details in ``extra`` (``logger.info("call.ended",
extra={"call_id": ...})``). Phone numbers and transcripts never belong in a log line;
``RedactFilter`` is the net under that rule, not the rule itself.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "extras",
}
# Fields whose values are personal data by nature, whatever they look like.
_PII_KEYS = {"caller", "callee", "from", "to", "number", "phone", "transcript", "text"}
# Seven or more digits, optionally separated as people write phone numbers. ISO dates
# dates are left alone (checked in redact_text).
_PHONE_RE = re.compile(r"(?<![\w.:])\+?\d(?:[ \-/().]{0,2}\d){6,17}(?![\w:])")
_DATE_RE = re.compile(r"(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
REDACTED = "[redacted]"
# Ids whose digit groups look like numbers to the pattern above (task ids, call uuids).
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def redact_text(text: str) -> str:
    """Replace phone-number-like runs of digits with ``[redacted]``."""

    def _sub(match: re.Match[str]) -> str:
        return match.group(0) if _DATE_RE.fullmatch(match.group(0)) else REDACTED

    parts = _UUID_RE.split(text)
    if len(parts) == 1:
        return _PHONE_RE.sub(_sub, text)
    uuids = _UUID_RE.findall(text)
    out = [_PHONE_RE.sub(_sub, parts[0])]
    for uuid_text, rest in zip(uuids, parts[1:], strict=True):
        out += [uuid_text, _PHONE_RE.sub(_sub, rest)]
    return "".join(out)


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """Return the ``extra`` fields a log call attached to ``record``."""
    extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    if record.name.startswith("celery"):
        # Celery repeats the task's arguments in ``data``; its message already says enough.
        extras.pop("data", None)
    return extras


class RedactFilter(logging.Filter):
    """Redact phone-number-like text and PII fields unless ``TOM_LOG_PII`` is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.conf import settings

        if getattr(settings, "TOM_LOG_PII", False):
            return True
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for key, value in record_extras(record).items():
            if key in _PII_KEYS and value not in (None, ""):
                setattr(record, key, REDACTED)
            elif isinstance(value, str):
                setattr(record, key, redact_text(value))
        # A traceback quotes exception messages and source lines ("ValueError: caller
        # 030 ..."): render it once here, redacted, into the cache every formatter reads.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()


class ConsoleFormatter(logging.Formatter):
    """``%(message)s`` followed by the record's extras as ``key=value`` pairs."""

    def format(self, record: logging.LogRecord) -> str:
        extras = record_extras(record)
        record.extras = "".join(f" {k}={v}" for k, v in sorted(extras.items()))
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update(record_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # as RedactFilter left it
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str)
