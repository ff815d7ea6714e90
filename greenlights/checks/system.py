"""Checks of the system around the calls: security as an attacker tries it, monitoring,
ToolHub's sources, the FreeSWITCH side, and the policy tables."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from typing import Any

from django.conf import settings

from greenlights.checks.base import Outcome, RunContext, check
from greenlights.models import State

SUBPROTOCOL = "audio.drachtio.org"
REQUIRED_METRICS = ("tom_telephony_calls_total", "tom_pipeline_e2e_latency_seconds_count",
                    "tom_stt_latency_seconds_count", "tom_llm_latency_seconds_count",
                    "tom_tts_latency_seconds_count", "tom_errors_total",
                    "tom_tool_calls_total")


async def _handshake_status(url: str) -> int:
    import websockets

    try:
        async with websockets.connect(url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                                      open_timeout=5):
            return 101
    except websockets.InvalidStatus as exc:
        return int(exc.response.status_code)


async def _close_code(url: str, frames: list[bytes]) -> int | None:
    import websockets

    call_uuid = url.rsplit("call=", 1)[-1]
    async with websockets.connect(url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                                  open_timeout=5, max_size=None) as ws:
        # Marked as TOM's own call: an attack says nothing about a policy variant.
        await ws.send(json.dumps({"uuid": call_uuid, "sampleRate": 8000, "tomSynthetic": True}))
        try:
            for frame in frames:
                await ws.send(frame)
            await asyncio.wait_for(ws.wait_closed(), 10)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code


async def _attack(ws_url: str) -> dict[str, Any]:
    from voice.auth import fork_token_mint

    def url(*, with_token: bool = True) -> str:
        call = f"greenlight-attack-{uuid.uuid4()}"
        # A token names its call (sub); _close_code sends that uuid in the metadata.
        token = fork_token_mint(call_uuid=call) if with_token else None
        query = f"?token={token}&call={call}" if token else f"?call={call}"
        return f"{ws_url}/ws/fork/{query}"

    replayed = url()
    first = await _handshake_status(replayed)
    return {
        "missing_token": await _handshake_status(url(with_token=False)),
        "replayed_token": await _handshake_status(replayed),
        "fresh_token": first,
        "oversized_frame": await _close_code(url(), [bytes(settings.TOM_MAX_FRAME_BYTES + 2)]),
        "flood": await _close_code(url(), [bytes(320)] * (settings.TOM_RATE_LIMIT_BURST * 3)),
    }


@check(name="security", category="security", timeout_s=60)
def security(ctx: RunContext) -> Outcome:
    """Each attack must be refused with its own answer: 403 at the handshake, 1009 for an
    oversized frame, 1008 for a flood (and a fresh token must still work)."""
    seen = asyncio.run(_attack(ctx.ws_url))
    expected = {"missing_token": 403, "replayed_token": 403, "fresh_token": 101,
                "oversized_frame": 1009, "flood": 1008}
    wrong = [f"{k}: got {seen[k]}, expected {v}" for k, v in expected.items() if seen[k] != v]
    return Outcome(state=State.RED if wrong else State.GREEN,
                   summary="; ".join(wrong) or "every attack was refused with the right code",
                   values=seen)


def scrape(web_url: str) -> dict[str, float]:
    request = urllib.request.Request(f"{web_url}/metrics")  # noqa: S310
    if settings.TOM_METRICS_TOKEN:
        request.add_header("Authorization", f"Bearer {settings.TOM_METRICS_TOKEN}")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        lines = response.read().decode().splitlines()
    out: dict[str, float] = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            out[base] = out.get(base, 0.0) + float(value)
    return out


@check(name="monitoring", category="monitoring", timeout_s=20)
def monitoring(ctx: RunContext) -> Outcome:
    """/metrics answers, has TOM's metrics, and they moved since the run started."""
    now = scrape(ctx.web_url)
    missing = [m for m in REQUIRED_METRICS if m not in now]
    before = ctx.metrics_before or {}
    moved = now.get("tom_telephony_calls_total", 0) > before.get("tom_telephony_calls_total", 0)
    values = {"metrics": len(now), "missing": missing, "calls_before":
              before.get("tom_telephony_calls_total"), "calls_now":
              now.get("tom_telephony_calls_total")}
    if missing:
        return Outcome(state=State.RED, summary=f"missing: {', '.join(missing)}", values=values)
    if not moved:
        return Outcome(state=State.YELLOW, summary="no call was counted during the run",
                       values=values)
    return Outcome(state=State.GREEN, summary=f"{len(now)} series, calls counted",
                   values=values)


@check(name="toolhub", category="tools", timeout_s=60)
def toolhub(ctx: RunContext) -> Outcome:
    from toolhub.models import ToolSource
    from toolhub.services import tool_source_check

    sources = [tool_source_check(source=s) for s in ToolSource.objects.filter(enabled=True)]
    values = {s.name: {"health": s.health, "error": s.last_error, **s.last_detail}
              for s in sources}
    failing = [s.name for s in sources if s.health != ToolSource.Health.OK]
    if not sources:
        return Outcome(state=State.YELLOW, summary="no tool source is enabled", values=values)
    return Outcome(state=State.RED if failing else State.GREEN,
                   summary=f"failing: {', '.join(failing)}" if failing
                   else f"{len(sources)} sources healthy", values=values)


def _esl_answers() -> str:
    with socket.create_connection((settings.FREESWITCH_ESL_HOST,
                                   settings.FREESWITCH_ESL_PORT), timeout=3) as conn:
        banner = conn.recv(256).decode("latin-1")
    if "auth/request" not in banner:
        raise RuntimeError(f"unexpected Event Socket banner: {banner[:60]!r}")
    return "auth/request"


@check(name="freeswitch_integration", category="telephony", timeout_s=20)
def freeswitch_integration(ctx: RunContext) -> Outcome:
    """The shipped dialplans parse and fork to TOM; the Event Socket answers if configured."""
    folder = settings.BASE_DIR / "deploy" / "freeswitch"
    values: dict[str, Any] = {}
    problems = []
    for path in sorted(folder.glob("*.xml")):
        try:
            text = ET.tostring(ET.parse(path).getroot(), encoding="unicode")  # noqa: S314
        except ET.ParseError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        forks = "/ws/fork/" in text or "/ws/audio-stream/" in text
        values[path.name] = "forks to TOM" if forks else "no fork to TOM"
        if not forks:
            problems.append(f"{path.name} does not fork audio to TOM")
    if not values and not problems:
        problems.append(f"no dialplan in {folder}")
    if settings.FREESWITCH_ESL_HOST:
        try:
            values["event_socket"] = _esl_answers()
        except (OSError, RuntimeError) as exc:
            problems.append(f"Event Socket {settings.FREESWITCH_ESL_HOST}:"
                            f"{settings.FREESWITCH_ESL_PORT}: {exc}")
    else:
        values["event_socket"] = "not configured (FREESWITCH_ESL_HOST)"
    return Outcome(state=State.RED if problems else State.GREEN,
                   summary="; ".join(problems) or "dialplans fork to TOM", values=values)


@check(name="rl_policy", category="rl", timeout_s=10)
def rl_policy(ctx: RunContext) -> Outcome:
    """Variants are set up, a default exists, and not every variant is blacklisted."""
    from calls import policy
    from calls.models import PolicyVariant

    variants = list(PolicyVariant.objects.all())
    state = policy.rl_metrics_update()
    live = [v for v in policy.live_variants() if not v.is_default]
    values = {"variants": len(variants), "live": [v.name for v in live],
              "default": next((v.name for v in variants if v.is_default), None),
              "blacklisted": state["blacklisted"],
              "exploration_ratio": state["exploration_ratio"]}
    if not variants:
        return Outcome(state=State.YELLOW, summary="not configured: no policy variants",
                       values=values)
    if values["default"] is None:
        return Outcome(state=State.RED, summary="no default variant", values=values)
    if not live and len(variants) > 1:
        return Outcome(state=State.RED, summary="every variant but the default is "
                       "blacklisted: all calls go to the default", values=values)
    return Outcome(state=State.GREEN, summary=f"{len(live)} live variant(s), default "
                   f"{values['default']}", values=values)


@check(name="rl_reward", category="rl", timeout_s=10)
def rl_reward(ctx: RunContext) -> Outcome:
    """The mean reward of the last 100 rewarded calls (red below TOM_RL_BLACKLIST_BELOW)."""
    from calls.policy import rewards_counted

    # Only what the policy learns from: crashed, attack and synthetic calls are not rewards.
    rewards = list(rewards_counted().order_by("-computed_at")
                   .values_list("reward", flat=True)[:100])
    if not rewards:
        return Outcome(state=State.YELLOW, summary="not configured: no rewarded calls yet",
                       values={"rewarded_calls": 0})
    mean = sum(rewards) / len(rewards)
    values = {"rewarded_calls": len(rewards), "mean_reward": round(mean, 3)}
    state = State.RED if mean < settings.TOM_RL_BLACKLIST_BELOW else (
        State.GREEN if mean >= 0 else State.YELLOW)
    return Outcome(state=state, summary=f"mean reward {mean:+.2f} over {len(rewards)} calls",
                   values=values)
