#!/usr/bin/env bash
# Install TOM into .venv and run it: daphne + Celery worker + beat, on the embedded
# default unless DATABASE_URL / REDIS_URL say otherwise. Extra arguments go to tom_run
# (--port, --detach, --stop, --exit-when-ready).
set -euo pipefail
cd "$(dirname "$0")/../.."
extras="" source deploy/local/_venv.sh
python manage.py migrate --no-input -v 0
python manage.py tom_supervisor
exec python manage.py tom_run "$@"
