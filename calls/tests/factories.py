"""Test data built through the services, the way real calls create it."""

from __future__ import annotations

import uuid
from typing import Any

from calls import services
from calls.models import Call


def call_create(*, caller: str = "+49 30 1234567", callee: str = "+49 40 7654321",
                turns: int = 0, **kwargs: Any) -> Call:
    call = services.call_start(uuid=str(uuid.uuid4()), caller=caller, callee=callee,
                               language=kwargs.pop("language", "de"), **kwargs)
    services.call_answer(call=call)
    for index in range(turns):
        services.call_turn_record(
            call=call, caller_text=f"question {index}", agent_text=f"answer {index}",
            timings=services.TurnTimings(stt_ms=120, llm_first_token_ms=300,
                                         tts_first_audio_ms=90, e2e_ms=640),
        )
    return call
