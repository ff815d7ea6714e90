"""The console in a real headless Chromium, on a real server (daphne, echo session,
recording on) with a call placed by the fork client as FreeSWITCH would place it:

- the board shows the call while it runs and drops it when it ends, without a reload;
- the call page's transcript grows while the call goes on;
- Hang up (after its confirm step) ends the call: the client receives ``disconnect``;
- afterwards the page plays the recording: a 200 ``audio/wav`` of 2 channels whose
  length is the call's within a second.

Screenshots of the board and the call page go to var/test-artifacts/.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from calls.models import Call
from greenlights.tests.test_browser import ARTIFACTS, page_attrs, page_text, supervisor_log_in
from voice.client import CallReport, ForkClient, Segment
from voice.signals import voiced
from voice.tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RATE = 8000


class CallInThread:
    """The fork client's call, run on a loop of its own while the browser is driven."""

    def __init__(self, server: LiveServer, call_uuid: str, segments: list[Segment]) -> None:
        self.client = ForkClient(
            url=server.fork_url(call_uuid=call_uuid),
            metadata={"uuid": call_uuid, "sampleRate": RATE, "language": "en"}, rate=RATE,
            segments=segments, tail_s=2.0)
        self.report: CallReport | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.report = asyncio.run(self.client.run())
        except BaseException as exc:  # re-raised in the test's thread
            self.error = exc

    def join(self, timeout: float) -> CallReport:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the fork client did not finish"
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def _wav_facts(driver: Any, url: str) -> dict[str, Any]:
    """What the browser gets for the recording: status, type, channels, seconds."""
    return driver.execute_async_script("""
        var done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: "same-origin"}).then(function (r) {
          return r.arrayBuffer().then(function (body) {
            // Walk the RIFF chunks: "fmt " says the layout, "data" how much audio.
            var v = new DataView(body), at = 12, facts = {status: r.status,
                type: r.headers.get("Content-Type")}, dataBytes = 0;
            while (at + 8 <= body.byteLength) {
              var id = String.fromCharCode(v.getUint8(at), v.getUint8(at + 1),
                                           v.getUint8(at + 2), v.getUint8(at + 3));
              var size = v.getUint32(at + 4, true);
              if (id === "fmt ") {
                facts.channels = v.getUint16(at + 10, true);
                facts.rate = v.getUint32(at + 12, true);
                facts.bits = v.getUint16(at + 22, true);
              } else if (id === "data") { dataBytes = Math.min(size, body.byteLength - at - 8); }
              at += 8 + size + (size % 2);
            }
            facts.seconds = dataBytes / (facts.rate * facts.channels * facts.bits / 8);
            done(facts);
          });
        }).catch(function (e) { done({error: String(e)}); });
    """, url)


def test_the_console_follows_a_call_hangs_it_up_and_plays_its_recording(
        live_server_process: Any, browser: Any, supervisors_group: None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server: LiveServer = live_server_process(TOM_RECORD_CALLS="true",
                                             TOM_WS_IDLE_TIMEOUT_S="20")
    supervisor_log_in(browser, server, next_url="/console/", ready_id="live-calls")
    board_tab = browser.current_window_handle
    call_uuid = str(uuid.uuid4())
    # Six utterances 2.5 s apart: the echo session answers each, for ~25 s of call.
    speech = voiced(RATE, 0.8)
    call = CallInThread(server, call_uuid, [Segment(speech, pause_s=3.0) for _ in range(7)])

    row = f'tr.live-call[data-uuid="{call_uuid}"]'
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
    # Read in the page in one step: SSE events swap the row (see page_text).
    WebDriverWait(browser, 15).until(
        lambda d: set(page_attrs(d, row, "data-stage")) & {"speaking", "thinking", "listening"})
    # The board shows what the caller said (the echo's "(900 ms of speech)") and ticks.
    WebDriverWait(browser, 20).until(lambda d: "ms of speech" in page_text(d, row))
    time.sleep(1.2)
    assert ":" in page_text(browser, f"{row} .console-duration")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "console-board.png"))

    # The call page in a second tab: the board stays open to see the call leave.
    browser.switch_to.new_window("tab")
    browser.get(f"{server.http}/console/calls/{call_uuid}/")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "transcript"))

    def lines() -> int:
        return len(browser.find_elements(By.CSS_SELECTOR, "#transcript li.line"))

    first = lines()
    WebDriverWait(browser, 20).until(lambda d: lines() >= first + 2)
    grown = lines()
    WebDriverWait(browser, 20).until(lambda d: lines() > grown)  # and again: it grows live
    assert page_text(browser, "#stage") in ("listening", "thinking", "speaking")
    browser.save_screenshot(str(ARTIFACTS / "console-call-live.png"))

    browser.find_element(By.ID, "hangup").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "hangup-confirm"))
    browser.find_element(By.ID, "hangup-confirm").click()
    report = call.join(timeout=30)
    assert report.disconnects, f"no disconnect: {report.as_dict()}"
    assert report.close_code == 1000

    # The board dropped the call by itself.
    browser.switch_to.window(board_tab)
    WebDriverWait(browser, 15).until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))

    record = Call.objects.get(uuid=call_uuid)
    deadline = time.monotonic() + 15
    while not record.is_ended and time.monotonic() < deadline:
        time.sleep(0.2)
        record.refresh_from_db()
    assert record.end_reason == Call.EndReason.SUPERVISOR_HANGUP and record.recording
    assert record.duration is not None

    browser.get(f"{server.http}/console/calls/{call_uuid}/")
    audio = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "recording"))
    facts = _wav_facts(browser, audio.get_attribute("src"))
    assert facts.get("status") == 200 and facts.get("type") == "audio/wav", facts
    assert facts["channels"] == 2
    assert abs(facts["seconds"] - record.duration.total_seconds()) <= 1.0, \
        (facts, record.duration)
    # The <audio> element itself loads it, and knows its length.
    duration = WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "var a = document.getElementById('recording'); "
        "return a.readyState >= 1 && isFinite(a.duration) ? a.duration : null;"))
    assert abs(duration - facts["seconds"]) < 0.1
    # Clicking a turn seeks the audio to it.
    turn = browser.find_elements(By.CSS_SELECTOR, "#transcript li[data-offset]")[-1]
    turn.click()
    seeked = browser.execute_script("return document.getElementById('recording').currentTime;")
    assert seeked >= float(turn.get_attribute("data-offset")) - 0.5 > 0
    browser.save_screenshot(str(ARTIFACTS / "console-call.png"))

