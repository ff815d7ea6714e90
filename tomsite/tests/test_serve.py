from __future__ import annotations

import io

from tomsite.serve import QuerylessAccessLog


def test_access_log_drops_query_strings() -> None:
    stream = io.StringIO()
    log = QuerylessAccessLog(stream)
    log("http", "complete", {"client": ["127.0.0.1", 5000], "method": "GET",
                             "path": "/admin/calls/call/?q=%2B493098765432", "status": 302,
                             "size": 0})
    log("websocket", "connecting", {"client": ["127.0.0.1", 5001],
                                    "path": "/ws/fork/?token=eyJhbGciOi.secret"})
    text = stream.getvalue()
    assert "/admin/calls/call/ " in text.replace('"', " ") and "WSCONNECTING /ws/fork/" in text
    assert "493098765432" not in text and "token" not in text and "eyJ" not in text
