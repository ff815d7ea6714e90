"""Start daphne, a Celery worker and Celery beat, wait until each really works, report."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tomsite import runner


def _health(url: str) -> dict[str, Any]:
    """The /healthz body, a 503's included (warming up); empty when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (our own URL)
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except OSError:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _warmth(health: dict[str, Any]) -> str:
    warm_up = health.get("warm_up") or {}
    if warm_up.get("state") == "off":
        return f"not warmed up ({warm_up.get('note')})"
    if warm_up.get("note"):
        return f"warm ({warm_up.get('note')})"
    if warm_up.get("preempted"):
        return f"warm in {warm_up.get('seconds')} s (a call came first)" + _capacity(health)
    return (f"warm in {warm_up.get('seconds')} s (models loaded, one turn through them)"
            + _capacity(health))


def _capacity(health: dict[str, Any]) -> str:
    capacity = health.get("capacity") or {}
    if not capacity.get("calls"):
        return ""  # no limit but the hard cap: nothing to say
    return f", capacity {capacity['calls']} calls ({capacity.get('source')})"


class Command(BaseCommand):
    help = "Run TOM (daphne + Celery worker + beat) and print where the admin is."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.TOM_HOST)
        parser.add_argument("--port", type=int, default=settings.TOM_PORT)
        parser.add_argument("--timeout", type=float, default=180.0,
                            help="seconds each process may take to become ready (the web "
                                 "process: its models loaded and a warm-up turn run)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--detach", action="store_true",
                          help="leave the processes running in the background and return")
        mode.add_argument("--exit-when-ready", action="store_true",
                          help="stop everything once all three are ready (a smoke test)")
        mode.add_argument("--stop", action="store_true",
                          help="stop processes started earlier with --detach")
        parser.add_argument("--demo-call", action="store_true",
                            help="once ready, place one demo call through /ws/fork/")
        parser.add_argument("--max-restarts", type=int, default=5,
                            help="restarts of one process allowed within --restart-window; "
                                 "one more death there stops everything (a crash loop)")
        parser.add_argument("--restart-window", type=float, default=300.0,
                            help="seconds over which --max-restarts is counted")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_restarts"] < 0 or options["restart_window"] <= 0:
            raise CommandError("--max-restarts must be 0 or more and --restart-window "
                               "more than 0 seconds")
        data_dir = settings.TOM_DATA_DIR
        pidfile = data_dir / "run" / "tom.pids"
        if options["stop"]:
            stopped = runner.stop_pidfile(pidfile)
            self.stdout.write(f"stopped: {', '.join(stopped) or 'nothing was running'}")
            return
        if pidfile.exists():
            runner.stop_pidfile(pidfile)  # a previous --detach run on the same data folder
        host, port = options["host"], options["port"]
        tls = (settings.TOM_TLS_CERT_FILE, settings.TOM_TLS_KEY_FILE)
        children = runner.build_children(
            host=host, port=port, log_dir=data_dir / "log",
            concurrency=settings.CELERY_WORKER_CONCURRENCY, tls=tls if all(tls) else None,
        )
        offsets = {c.name: c.log_size() for c in children}
        for child in children:
            child.start(cwd=settings.BASE_DIR, detach=options["detach"])
        try:
            self._wait_ready(children, offsets, host, port, options["timeout"], bool(all(tls)))
        except runner.RunnerError as exc:
            for child in children:
                child.stop()
            raise CommandError(str(exc)) from None
        if options["demo_call"]:
            self._demo_call(host, port, bool(all(tls)), children)
        if options["exit_when_ready"]:
            for child in children:
                child.stop()
            self.stdout.write("all processes were ready; stopped again (--exit-when-ready)")
            return
        if options["detach"]:
            runner.write_pidfile(pidfile, children)
            self.stdout.write("running in the background; stop with: manage.py tom_run --stop")
            return
        self._supervise(children, runner.RestartPolicy(
            max_restarts=options["max_restarts"], window_s=options["restart_window"]))

    def _wait_ready(self, children: list[runner.Child], offsets: dict[str, int], host: str,
                    port: int, timeout: float, tls: bool) -> None:
        web, worker, beat = children
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        base = f"{scheme}://{shown}:{port}"
        health: dict[str, Any] = {}

        def web_ready() -> bool:
            health.clear()
            health.update(_health(f"{base}/healthz"))
            warm_up = health.get("warm_up") or {}
            if warm_up.get("state") == "failed":  # it will never be ready: say so now
                raise runner.RunnerError(
                    f"the web process cannot answer calls: its warm-up failed "
                    f"({warm_up.get('error')}); see {web.log_path}")
            return health.get("ok") is True

        runner.wait_until("the web server to load its models and warm up (GET /healthz)",
                          web_ready, timeout=timeout, children=children)
        runner.wait_until("the admin login page", lambda: runner.http_ok(f"{base}/admin/login/"),
                          timeout=timeout, children=children)
        self.stdout.write(f"web      ready  daphne on {base}   {_warmth(health)}   "
                          f"log: {web.log_path}")

        runner.wait_until("the Celery worker to start",
                          lambda: " ready." in worker.log_text(since=offsets["worker"]),
                          timeout=timeout, children=children)
        # A task through the real broker proves the worker consumes, not just that it booted.
        from calls.tasks import calls_reap_stale

        task_id = calls_reap_stale.delay().id
        runner.wait_until(
            "the Celery worker to run a task",
            lambda: f"[{task_id}] succeeded" in worker.log_text(since=offsets["worker"]),
            timeout=timeout, children=children,
        )
        self.stdout.write(f"worker   ready  ran calls.tasks.calls_reap_stale via "
                          f"{settings.CELERY_BROKER_URL.split('://')[0]}://   "
                          f"log: {worker.log_path}")
        runner.wait_until("Celery beat to start its scheduler",
                          lambda: "beat: Starting" in beat.log_text(since=offsets["beat"]),
                          timeout=timeout, children=children)
        # A beat that cannot load its schedule from the database dies right after starting.
        runner.stay_alive(children, seconds=1.5)
        self.stdout.write(f"beat     ready  DatabaseScheduler   log: {beat.log_path}")
        self.stdout.write(self.style.SUCCESS(f"\nTOM admin: {base}/admin/"))

    def _demo_call(self, host: str, port: int, tls: bool, children: list[runner.Child]) -> None:
        """Place the demo call; if it fails, say why in words, stop everything, exit non-zero."""
        from voice.demo import DEMO_QUESTION, demo_call

        web = children[0]
        web_process = web.process  # kept: a restarted web process gets a new Popen
        shown = f"[{host}]" if ":" in host else host
        self.stdout.write(f"\ndemo call: a caller asks {DEMO_QUESTION!r} over an 8 kHz line")
        self.stdout.flush()
        try:
            result = demo_call(ws_base=f"{'wss' if tls else 'ws'}://{shown}:{port}")
        except Exception as exc:  # a refused or failed connection is a failed demo, in words
            self._demo_failed([f"could not place the call: {exc}"], web, web_process,
                              children, dropped=True)
        for item in result.report.transcripts:
            self.stdout.write(f"  {item.get('role'):>6}: {item.get('text')}")
        for error in result.report.errors:
            self.stdout.write(self.style.ERROR(f"  error from TOM: {error}"))
        turn = result.call.turns.first() if result.call else None
        if turn is not None:
            self.stdout.write(
                f"  latency: STT {turn.stt_ms} ms, LLM first token {turn.llm_first_token_ms} ms,"
                f" TTS first audio {turn.tts_first_audio_ms} ms, end of speech to first agent"
                f" audio {turn.e2e_ms} ms (includes {settings.TOM_VAD_STOP_MS} ms VAD silence)")
        if result.problems:
            self._demo_failed(result.problems, web, web_process, children,
                              dropped=result.report.close_code in (None, 1006))

    def _demo_failed(self, problems: list[str], web: runner.Child,
                     web_process: subprocess.Popen[bytes] | None, children: list[runner.Child],
                     *, dropped: bool) -> NoReturn:
        if web_process is not None:
            try:  # a process killed mid-call is reaped a moment after its socket closes
                code = web_process.wait(timeout=3 if dropped else 0.1)
            except subprocess.TimeoutExpired:
                pass
            else:
                problems = [*problems, f"the web process (pid {web_process.pid}) died: "
                            f"{runner.exit_reason(code)}"]
        for child in children:
            child.stop()
        raise CommandError("the demo call failed:\n  - " + "\n  - ".join(problems)
                           + f"\n  see the web log: {web.log_path}\n  stopped web, worker "
                           "and beat")

    def _supervise(self, children: list[runner.Child], policy: runner.RestartPolicy) -> None:
        stopping = False

        def _stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)

        def say(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()  # a pipe or a log file should read it now, not at exit

        supervisor = runner.Supervisor(children, cwd=settings.BASE_DIR, policy=policy, say=say)
        say("supervising " + ", ".join(f"{c.name} (pid {c.process.pid})" for c in children
                                       if c.process)
            + "; a process that dies is restarted. Press Ctrl-C to stop")
        try:
            while not stopping:
                supervisor.poll()
                time.sleep(0.5)
        except runner.RunnerError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for child in children:
                child.stop()
            self.stdout.write("stopped web, worker and beat")
