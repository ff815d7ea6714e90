"""The shipped dialplans parse and call the fork modules with their exact argument order."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from conftest import REPO

FREESWITCH = REPO / "deploy" / "freeswitch"


def _actions(name: str) -> list[tuple[str, str]]:
    root = ET.parse(FREESWITCH / name).getroot()  # noqa: S314  (our own file)
    return [(a.get("application", ""), a.get("data", "")) for a in root.iter("action")]


def _expand(text: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
    return text


def _set_vars(actions: list[tuple[str, str]]) -> dict[str, str]:
    return dict(data.split("=", 1) for app, data in actions if app == "set")


def test_audio_fork_dialplan_follows_the_module_syntax() -> None:
    actions = _actions("dialplan_audio_fork.xml")
    apps = [app for app, _ in actions]
    assert apps[0] == "answer" and apps[-1] == "park"
    variables = _set_vars(actions)
    assert variables["tom_token"].startswith("${curl(http://${tom_base}/fork/token?uuid=${uuid})")
    command = next(d for a, d in actions if a == "eval")
    assert command.startswith("${uuid_audio_fork ") and command.endswith("}")
    expanded = _expand(command[2:-1], {**variables, "uuid": "U-1", "tom_token": "T",
                                       "caller_id_number": "1001",
                                       "destination_number": "8600", "tom_base": "h:8000"})
    expanded = _expand(expanded, {"tom_metadata": _expand(variables["tom_metadata"], {
        "uuid": "U-1", "caller_id_number": "1001", "destination_number": "8600"})})
    # switch_separate_string(cmd, ' ', argv, 7): the 7th slot keeps the rest of the line.
    argv = expanded.split(" ", 7)[1:]
    assert argv[0:2] == ["U-1", "start"]
    assert argv[2] == "ws://h:8000/ws/fork/?token=T"
    assert argv[3] in {"mono", "mixed", "stereo"} and argv[4] in {"8k", "16k", "8000", "16000"}
    assert argv[5] == "tom_fork"
    metadata = json.loads(argv[6])
    assert " " not in argv[6] and "'" not in argv[6] and "\\" not in argv[6]
    assert metadata == {"uuid": "U-1", "caller": "1001", "callee": "8600", "sampleRate": 8000,
                        "mixType": "mono", "direction": "inbound", "language": "de"}


def test_audio_stream_dialplan_sends_the_token_as_a_header() -> None:
    actions = _actions("dialplan_audio_stream.xml")
    variables = _set_vars(actions)
    headers = json.loads(_expand(variables["STREAM_EXTRA_HEADERS"], {"tom_token": "T"}))
    assert headers == {"Authorization": "Bearer T"}
    command = next(d for a, d in actions if a == "eval")
    argv = command[2:-1].split(" ", 6)[1:]
    assert argv[0:2] == ["${uuid}", "start"] and argv[2].endswith("/ws/audio-stream/")
    assert argv[3] == "mono" and argv[4] == "8k" and argv[5] == "${tom_metadata}"


def test_event_hook_plays_files_and_breaks_on_kill() -> None:
    lua = (FREESWITCH / "tom_fork_events.lua").read_text()
    for subclass in ("mod_audio_fork::play_audio", "mod_audio_stream::play",
                     "mod_audio_stream::json", "mod_audio_fork::disconnect"):
        assert re.search(re.escape(f'"{subclass}"'), lua), subclass
    assert "uuid_broadcast" in lua and "uuid_break" in lua
