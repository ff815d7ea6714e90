"""The console's test call (``/ws/console/call/``): who may open it (a staff session from
a page of this site), what the browser may say about the call (the server names it,
marks it synthetic and forces the chosen variant), and the whole call in a real headless
Chromium whose microphone is a WAV file of TOM's caller voice asking a question."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import wave
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from calls import services as call_services
from calls.models import Call, PolicyVariant
from calls.policy import call_policy_force
from conftest import REPO
from voice import metrics, models, tts
from voice.dsp.resample import resample
from voice.routing import websocket_urlpatterns
from voice.signals import voiced
from voice.tests.conftest import LiveServer

PATH = "/ws/console/call/"
ORIGIN = "http://localhost"
QUESTION = "Hello, what are your opening hours on Saturday morning?"
ARTIFACTS = REPO / "var" / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def _communicator(*, cookie: str | None = None, origin: str | None = ORIGIN
                  ) -> WebsocketCommunicator:
    headers = []
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(URLRouter(websocket_urlpatterns), PATH, headers=headers)


def _refusals(reason: str) -> float:
    return float(metrics.HANDSHAKES_REFUSED.labels(reason=reason)._value.get())


@database_sync_to_async
def _user(kind: str) -> Any:
    if kind == "supervisor":
        return call_services.supervisor_ensure(username="sue")[0]
    user_model = get_user_model()
    return user_model.objects.create_user(
        username=kind, password=uuid.uuid4().hex, is_staff=kind != "visitor",
        is_active=kind != "inactive")


@pytest.fixture
def echo(settings: Any) -> None:
    settings.TOM_SESSION_BACKEND = "echo"


# --- who may open it --------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
async def test_an_anonymous_visitor_is_refused_at_the_handshake() -> None:
    before = _refusals("anonymous")
    connected, _ = await _communicator().connect()
    assert not connected  # closed before accept: daphne answers 403
    assert _refusals("anonymous") == before + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["visitor", "staff-without-permission", "inactive"])
async def test_a_session_that_may_not_see_calls_is_refused(kind: str,
                                                           supervisors_group: None) -> None:
    user = await _user(kind)
    cookie = await database_sync_to_async(_session_cookie)(user)
    before = _refusals("not_staff") + _refusals("anonymous")
    connected, _ = await _communicator(cookie=cookie).connect()
    assert not connected
    # An inactive user's session no longer authenticates at all (ModelBackend).
    assert _refusals("not_staff") + _refusals("anonymous") == before + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost.evil.example",
                                    None])
async def test_a_page_of_another_site_is_refused(origin: str | None, echo: None,
                                                 supervisors_group: None) -> None:
    cookie = await database_sync_to_async(_session_cookie)(await _user("supervisor"))
    connected, _ = await _communicator(cookie=cookie, origin=origin).connect()
    assert not connected
    # The same session from a page of this site may call.
    ws = _communicator(cookie=cookie)
    assert (await ws.connect())[0]
    await ws.disconnect()


# --- what the browser may say about the call -------------------------------------------

@pytest.mark.django_db(transaction=True)
async def test_a_supervisors_call_is_named_here_synthetic_and_runs_the_chosen_variant(
        echo: None, supervisors_group: None) -> None:
    await PolicyVariant.objects.acreate(name="brisk", parameters={"max_sentences": 1})
    await PolicyVariant.objects.acreate(name="other")
    cookie = await database_sync_to_async(_session_cookie)(await _user("supervisor"))
    ws = _communicator(cookie=cookie)
    connected, _ = await ws.connect()
    assert connected
    placed = json.loads(await ws.receive_from())
    assert placed["type"] == "tomCall"
    call_uuid = placed["data"]["uuid"]
    assert str(uuid.UUID(call_uuid)) == call_uuid
    # What the browser claims about itself beyond its audio is not believed.
    await ws.send_to(text_data=json.dumps({
        "sampleRate": 16000, "tomVariant": "brisk", "tomSynthetic": False, "language": "de",
        "uuid": call_uuid, "caller": "+4930123456", "encoding": "ulaw"}))
    for _ in range(25):
        await ws.send_to(bytes_data=voiced(16000, 0.02))
    for _ in range(100):  # answered: the session (with its variant) is running
        if await Call.objects.filter(uuid=call_uuid, status=Call.Status.ACTIVE).aexists():
            break
        await asyncio.sleep(0.05)
    await ws.disconnect()
    call = await Call.objects.select_related("variant").aget(uuid=call_uuid)
    assert call.synthetic and call.caller_id is None and not call.caller_hash
    assert call.variant is not None and call.variant.name == "brisk"
    assert call.policy_variant == "brisk" and call.language == "de"  # the page's picker
    assert call.metadata["flavour"] == "browser" and call.metadata["mode"] == "stream"
    assert call.metadata["encoding"] == "l16" and call.metadata["tomVariant"] == "brisk"
    assert call.status == Call.Status.COMPLETED
    assert call.end_reason == Call.EndReason.CALLER_HANGUP


@pytest.mark.django_db(transaction=True)
async def test_a_variant_that_is_not_live_ends_the_call_saying_so(
        echo: None, supervisors_group: None) -> None:
    await PolicyVariant.objects.acreate(name="retired", enabled=False)
    cookie = await database_sync_to_async(_session_cookie)(await _user("supervisor"))
    ws = _communicator(cookie=cookie)
    assert (await ws.connect())[0]
    call_uuid = json.loads(await ws.receive_from())["data"]["uuid"]
    await ws.send_to(text_data=json.dumps({"sampleRate": 16000, "tomVariant": "retired"}))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error == {"type": "error", "data": {"message": "variant 'retired' is not enabled"}}
    assert (await ws.receive_output(timeout=5))["code"] == 1011
    call = await Call.objects.aget(uuid=call_uuid)
    assert call.synthetic and call.variant is None and call.status == Call.Status.FAILED


@pytest.mark.django_db(transaction=True)
async def test_a_malformed_variant_name_is_a_metadata_error(
        echo: None, supervisors_group: None) -> None:
    cookie = await database_sync_to_async(_session_cookie)(await _user("supervisor"))
    ws = _communicator(cookie=cookie)
    assert (await ws.connect())[0]
    await ws.receive_from()
    await ws.send_to(text_data=json.dumps({"sampleRate": 16000, "tomVariant": ["a"]}))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["data"]["message"] == "tomVariant must be a policy variant's name"
    assert (await ws.receive_output(timeout=5))["code"] == 1007


@pytest.mark.django_db
def test_only_a_synthetic_call_may_have_its_variant_forced() -> None:
    PolicyVariant.objects.create(name="brisk")
    real = call_services.call_start(uuid="real-call", metadata={"tomVariant": "brisk"})
    with pytest.raises(ValueError, match="only TOM's own test calls"):
        call_policy_force(call=real, name="brisk")
    real.refresh_from_db()
    assert real.variant is None


# --- the whole call in Chromium ---------------------------------------------------------

@pytest.fixture(scope="module")
def assembled() -> None:
    for name in models.required():
        models.assemble(name)


def _speech_wav(path: Path, *parts: str | float) -> Path:
    """A microphone for Chromium: TOM's caller voice saying each text, each number a
    pause of that many seconds, as a 48 kHz 16-bit WAV."""
    voice = tts.caller_voice()
    rate = 48_000
    pcm = b"".join(bytes(2 * round(rate * part)) if isinstance(part, float)
                   else resample(voice.synthesize(part), voice.rate, rate) for part in parts)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


@pytest.fixture
def chromium_with_microphone() -> Iterator[Any]:
    """Opens a headless Chromium whose microphone plays the given WAV once (None: no
    microphone)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are missing: deploy/local/test.sh "
                    "installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []

    def open_with(wav: Path | None) -> Any:
        options = Options()
        options.binary_location = CHROMIUM
        microphone = () if wav is None else (
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop")
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required",
                     *microphone):
            options.add_argument(flag)
        drivers.append(webdriver.Chrome(service=Service(CHROMEDRIVER), options=options))
        return drivers[-1]

    yield open_with
    for driver in drivers:
        driver.quit()


def _log_in_and_call(browser: Any, server: LiveServer, *, password: str,
                     variant: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{server.http}/admin/login/?next=/console/call-tom/")
    browser.find_element(By.ID, "id_username").send_keys("sue")
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "call-tom"))
    Select(browser.find_element(By.ID, "variant")).select_by_value(variant)
    Select(browser.find_element(By.ID, "language")).select_by_value("en")
    browser.find_element(By.ID, "call-tom").click()


def _page(browser: Any) -> dict[str, Any]:
    return dict(browser.execute_script("return window.tomTestCall"))


def _lines(browser: Any, role: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [li.text for li in browser.find_elements(
        By.CSS_SELECTOR, f"#transcript li[data-role={role}][data-final=true]")]


@pytest.mark.slow
@pytest.mark.models
@pytest.mark.timeout(600)
@pytest.mark.django_db(transaction=True)
def test_a_supervisor_calls_tom_from_the_console_and_hears_the_answer(
        assembled: None, supervisors_group: None, live_server_process: Any,
        chromium_with_microphone: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    PolicyVariant.objects.create(name="brisk", parameters={"max_sentences": 1})
    PolicyVariant.objects.create(name="chatty", parameters={"max_sentences": 3})
    _, password = call_services.supervisor_ensure(username="sue")
    server: LiveServer = live_server_process(log=tmp_path / "server.log",
                                             TOM_SESSION_BACKEND="local", TOM_LANGUAGE="en",
                                             TOM_WS_IDLE_TIMEOUT_S="30")
    # A second of silence, the question, and silence the turn ends in while TOM answers.
    wav = _speech_wav(tmp_path / "question.wav", 1.0, QUESTION, 6.0)
    browser = chromium_with_microphone(wav)
    _log_in_and_call(browser, server, password=password, variant="brisk")
    page = partial(_page, browser)
    lines = partial(_lines, browser)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = page()
        if state["state"] in ("ended", "failed"):
            break
        if lines("agent") and state["marks"] >= 1:  # TOM's first reply played out
            break
        time.sleep(0.25)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "console-test-call.png"))
    state, status = page(), browser.find_element(By.ID, "call-status").text
    caller, agent = lines("caller"), lines("agent")
    log = (tmp_path / "server.log").read_text(errors="replace")[-3000:]
    assert state["state"] == "live", (status, log)
    assert any(word in " ".join(caller).lower() for word in ("saturday", "opening", "hours")), \
        (caller, log)
    assert agent and agent[0].removeprefix("TOM").strip(), (agent, state, caller, log)
    # TOM's answer reached the page as audio: more than half a second of 16 kHz L16,
    # scheduled and played out (the mark after it answered "playout").
    assert state["agentSamples"] > 8000 and state["agentSamplesPlayed"] > 8000, state
    assert state["sentFrames"] > 100, state  # 2 s and more of microphone, in 20 ms frames
    call = Call.objects.select_related("variant").get(uuid=state["callUuid"])
    assert call.synthetic and call.variant is not None and call.variant.name == "brisk"
    assert call.metadata["flavour"] == "browser" and call.language == "en"
    browser.find_element(By.ID, "hang-up").click()
    WebDriverWait(browser, 10).until(lambda d: page()["state"] == "ended")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not call.is_ended:
        time.sleep(0.2)
        call.refresh_from_db()
    assert call.end_reason == Call.EndReason.CALLER_HANGUP
    assert call.turns.filter(index=0).exclude(caller_text="").exists()
    assert (ARTIFACTS / "console-test-call.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.models  # the caller's voice is the packaged Piper voice
@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_talking_over_tom_stops_what_the_page_plays(
        assembled: None, supervisors_group: None, live_server_process: Any,
        chromium_with_microphone: Any, tmp_path: Path) -> None:
    PolicyVariant.objects.create(name="brisk")
    _, password = call_services.supervisor_ensure(username="sue")
    # The echo session says the caller's words back; the second sentence starts while
    # the echo of the first (about 3 s) plays, so TOM sends killAudio.
    server: LiveServer = live_server_process(log=tmp_path / "server.log")
    wav = _speech_wav(tmp_path / "barge.wav", 1.0, QUESTION, 1.5,
                      "Sorry, let me ask that again please.", 4.0)
    browser = chromium_with_microphone(wav)
    _log_in_and_call(browser, server, password=password, variant="brisk")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
            _page(browser)["killed"] and len(_lines(browser, "caller")) >= 2):
        time.sleep(0.2)
    state = _page(browser)
    log = (tmp_path / "server.log").read_text(errors="replace")[-3000:]
    assert state["killed"] >= 1, (state, log)
    # What was scheduled past the cut never played: the page stopped its sources.
    assert 0 < state["agentSamplesPlayed"] < state["agentSamples"], state
    assert browser.execute_script(
        "return window.tomTestCall.state") == "live"  # a barge-in is no hang-up
    call = Call.objects.get(uuid=state["callUuid"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not call.turns.filter(barge_in=True).exists():
        time.sleep(0.2)
    assert call.turns.filter(index=0, barge_in=True).exists()


# The worklet in Chromium's own audio engine: 1 s of a tone at the context's rate, through
# pcm-worklet.js; what comes out must be 16 kHz in 20 ms frames, a speech-band tone kept
# at its level and one above 8 kHz (it would fold back into the band) removed.
RESAMPLE_SCRIPT = """
const done = arguments[arguments.length - 1];
(async () => {
  const results = [];
  for (const [freq, rate] of arguments[0]) {
    const ctx = new OfflineAudioContext(1, rate, rate);
    await ctx.audioWorklet.addModule(arguments[1]);
    const osc = new OscillatorNode(ctx, {frequency: freq});
    const node = new AudioWorkletNode(ctx, "pcm-worklet", {processorOptions: {outRate: 16000}});
    const sizes = [], samples = [];
    node.port.onmessage = (event) => {
      sizes.push(event.data.byteLength);
      const view = new DataView(event.data);
      for (let i = 0; i < event.data.byteLength / 2; i++) {
        samples.push(view.getInt16(i * 2, true) / 32768);
      }
    };
    osc.connect(new GainNode(ctx, {gain: 0.5})).connect(node).connect(ctx.destination);
    osc.start();
    await ctx.startRendering();
    await new Promise((resolve) => setTimeout(resolve, 200));  // the port's last messages
    const tail = samples.slice(1600);
    const rms = Math.sqrt(tail.reduce((sum, x) => sum + x * x, 0) / Math.max(1, tail.length));
    results.push({freq, rate, frames: sizes.length, sizes: [...new Set(sizes)], rms});
  }
  done(results);
})().catch((error) => done(String(error)));
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_worklet_resamples_the_microphone_to_16k_frames(
        live_server_process: Any, chromium_with_microphone: Any) -> None:
    server: LiveServer = live_server_process()
    browser = chromium_with_microphone(None)
    browser.get(f"{server.http}/admin/login/")  # a page of the site: a secure context
    browser.set_script_timeout(60)
    cases = [[440, 48000], [3000, 48000], [12000, 48000], [440, 44100], [10000, 44100]]
    results = browser.execute_async_script(RESAMPLE_SCRIPT, cases,
                                           f"{server.http}/static/console/pcm-worklet.js")
    assert isinstance(results, list), results
    for result in results:
        # 1 s in: 16,000 samples out, as 50 frames of 320 samples (the last may be short
        # of its end: only whole frames are sent).
        assert result["sizes"] == [640] and result["frames"] in (49, 50), result
        if result["freq"] <= 3000:
            assert abs(result["rms"] - 0.5 / 2 ** 0.5) < 0.01, result
        else:
            assert result["rms"] < 0.005, result
