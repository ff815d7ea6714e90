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
# The deployment tests run promtool and systemd-analyze on deploy/ and HAProxy in front of
# two web processes; the greenlights page test drives Debian's chromium through
# chromedriver; the native-build test disassembles llama.cpp with binutils' objdump.
for tool in promtool:prometheus systemd-analyze:systemd haproxy:haproxy chromium:chromium \
            chromedriver:chromium-driver objdump:binutils; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing ${tool#*:} (Debian) for ${tool%%:*} ..."
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${tool#*:}" >/dev/null
    else
      echo "warning: ${tool%%:*} is missing (apt-get install ${tool#*:}); its tests fail" >&2
    fi
  fi
done

data_dir=$(mktemp -d)
trap 'rm -rf "$data_dir"' EXIT
export TOM_DATA_DIR="$data_dir/main"

# The models, and proof that every compiled library runs on this CPU (see run.sh).
echo "== models and native build"; python manage.py tom_models --verify

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
