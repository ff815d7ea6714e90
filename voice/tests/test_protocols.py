from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from voice.dsp.pcm import decode_inbound
from voice.protocols import outbound
from voice.protocols.metadata import (
    JsonDepthError,
    JsonItemsError,
    MetadataError,
    parse_call_start,
    split_json_texts,
)


def test_drachtio_glued_texts_are_split() -> None:
    # audio_pipe.cpp bufferForSending() appends pending texts into one frame.
    assert split_json_texts('{"uuid":"a"}{"event":"dtmf","dtmf":"5"}') == [
        {"uuid": "a"}, {"event": "dtmf", "dtmf": "5"}]


def test_freeswitch_and_jambonz_field_names() -> None:
    fs = parse_call_start({"uuid": "u1", "caller": "+4930", "callee": "+4940",
                           "sampleRate": "16k", "mixType": "stereo", "language": "de"},
                          default_rate=8000)
    assert (fs.uuid, fs.sample_rate, fs.channels, fs.language) == ("u1", 16000, 2, "de")
    jb = parse_call_start({"callSid": "c1", "from": "+4930", "to": "+4940", "sampleRate": 24000,
                           "mixType": "mono", "direction": "outbound", "accountSid": "x"},
                          default_rate=8000)
    assert (jb.uuid, jb.caller, jb.callee, jb.direction) == ("c1", "+4930", "+4940", "outbound")
    assert jb.extra == {"accountSid": "x"}
    assert "+4930" not in repr(jb)  # raw numbers stay out of reprs (and so out of logs)


@pytest.mark.parametrize(("data", "message"), [
    ([], "JSON object"), ({"sampleRate": 8000}, "uuid"), ({"uuid": "u", "sampleRate": 11025},
                                                           "sampleRate"),
    ({"uuid": "u", "mixType": "quad"}, "mixType"), ({"uuid": "u", "encoding": "opus"}, "encoding"),
    ({"uuid": "u" * 65}, "64"),
])
def test_bad_metadata_says_why(data: object, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_call_start(data, default_rate=8000)


def test_stereo_keeps_the_caller_channel() -> None:
    left, right = np.arange(10, dtype="<i2"), -np.arange(10, dtype="<i2") - 100
    interleaved = np.column_stack([left, right]).astype("<i2").tobytes()
    assert decode_inbound(interleaved, encoding="l16", channels=2) == left.tobytes()


def test_play_audio_has_the_fields_the_module_requires() -> None:
    message = json.loads(outbound.play_audio(pcm=b"\x01\x00" * 4, rate=8000, text="Hallo"))
    assert message["type"] == "playAudio"
    data = message["data"]
    assert data["audioContentType"] == "raw" and data["sampleRate"] == 8000
    assert base64.b64decode(data["audioContent"]) == b"\x01\x00" * 4


def test_stream_audio_never_contains_the_mark_sentinel() -> None:
    pcm = np.array([0, -1, 5, -1], dtype="<i2").tobytes()
    assert np.frombuffer(outbound.stream_safe(pcm), dtype="<i2").tolist() == [0, -2, 5, -2]


def test_deep_nesting_is_refused_before_the_parser_recurses() -> None:
    # 30,000 levels made json raise RecursionError, which is no ValueError (a 1011).
    for text in ("[" * 30_000 + "]" * 30_000, '{"a":' * 65 + "1" + "}" * 65):
        with pytest.raises(JsonDepthError, match="nested deeper than 64"):
            split_json_texts(text)
    # Brackets inside strings are text, and 64 levels are still fine.
    assert split_json_texts(json.dumps({"note": "[" * 500})) == [{"note": "[" * 500}]
    assert split_json_texts("[" * 64 + "]" * 64)


def test_items_per_frame_are_capped_as_they_are_parsed() -> None:
    dtmf = '{"type":"dtmf","data":{"digit":"5"}}'
    assert len(split_json_texts(dtmf * 32, max_items=32)) == 32
    with pytest.raises(JsonItemsError, match="more than 32"):
        split_json_texts(dtmf * 1_700, max_items=32)
