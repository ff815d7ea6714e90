"""``python -m voice.speech serve|wait``: TOM's speech server as a process of its own.

``serve`` loads the configured Whisper models and Piper voice, warms them and answers
on ``--host``/``--port`` (the web process's supervisor starts it so, as does
deploy/systemd/tom-speech.service). ``wait`` returns once the server at ``--url`` is
warm: the unit's ``ExecStartPost``, so the unit counts as started only when it is.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_PORT = 8091  # the unit's; TOM_SPEECH_SERVER_URL in /etc/tom/tom.env names it


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice.speech")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve Whisper and Piper for TOM's settings")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (another host's web processes: a private one)")
    serve.add_argument("--port", type=int, default=0,
                       help=f"default: TOM_SPEECH_SERVER_PORT, else {DEFAULT_PORT}")
    serve.add_argument("--batch", type=int, default=0,
                       help="most utterances decoded together; default: TOM_STT_BATCH")
    serve.add_argument("--tts-workers", type=int, default=0,
                       help="threads synthesizing clauses; default: one per core")
    wait = commands.add_parser("wait", help="wait until the server is warm")
    wait.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    wait.add_argument("--timeout", type=float, default=0.0,
                      help="seconds; default: TOM_SPEECH_SERVER_START_TIMEOUT_S")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.conf import settings

    if args.command == "serve":
        from voice.speech.server import serve as run

        run(host=args.host, port=args.port or settings.TOM_SPEECH_SERVER_PORT or DEFAULT_PORT,
            max_batch=args.batch or settings.TOM_STT_BATCH, tts_workers=args.tts_workers)
        return 0
    from tomsite.runner import http_ok

    timeout = args.timeout or settings.TOM_SPEECH_SERVER_START_TIMEOUT_S
    deadline = time.monotonic() + timeout
    url = args.url.rstrip("/")
    while not http_ok(f"{url}/health"):  # 503 until loaded and warm
        if time.monotonic() >= deadline:
            sys.stderr.write(f"the speech server at {url} was not warm within {timeout:.0f} s\n")
            return 1
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
