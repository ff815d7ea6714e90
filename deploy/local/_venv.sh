# Sourced by run.sh and test.sh: make .venv and install TOM with the extras in $extras.
# Re-installs only when pyproject.toml or the extras changed, so repeated runs are quick.
python_bin=python3
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "TOM needs Python 3.11 or newer; $python_bin is $("$python_bin" --version 2>&1)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=".venv/.tom-install-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
if [ ! -e "$stamp" ]; then
  echo "installing TOM into .venv (${extras:-base}) ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
  rm -f .venv/.tom-install-* && touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
