# Sourced by _venv.sh (models/dev extras) after llama-cpp-python is installed: build
# llama.cpp's own HTTP server, `llama-server`, from the very llama.cpp source that the
# installed llama-cpp-python vendors, and put it at .venv/bin/llama-server.
# Why a separate binary: llama-server decodes N sequences together (--parallel N,
# continuous batching), holds one copy of the model for every web process of the host,
# and runs outside daphne, so a native crash (SIGILL seen) costs one turn, not every call
# (voice/inference/). llama-cpp-python's own Python server has no parallel slots.
# Needs $llama_cmake from _venv.sh: the same portable CPU target as the wheel (never
# -march=native, never AVX-512/AMX). Added here: a static build (one self-contained file
# that can be copied out of the cache), no tests/examples, no OpenSSL and no web UI (the
# UI would be fetched from the network at build time; TOM only talks to the API).
# The binary is cached in ~/.cache/tom/llama-server-<hash of version and flags>/ like the
# wheel, so a fresh clone on this machine installs it in a second.
llama_server_version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')
llama_server_cmake="$llama_cmake -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DCMAKE_BUILD_TYPE=Release"
llama_server_hash=$(printf '%s' "llama-cpp-python==$llama_server_version $llama_server_cmake" | sha256sum | cut -c1-16)
llama_server_cache="${XDG_CACHE_HOME:-$HOME/.cache}/tom/llama-server-$llama_server_hash"
llama_server_stamp=".venv/.tom-llama-server-$llama_server_hash"
if [ ! -e "$llama_server_stamp" ] || [ ! -x .venv/bin/llama-server ]; then
  if [ ! -x "$llama_server_cache/llama-server" ]; then
    echo "building llama-server $llama_server_version for a portable CPU target (5-8 minutes on 2 cores) ..."
    # Built into a side folder and moved into place whole, as the wheel is: an interrupted
    # build leaves nothing that a later run would take for a finished binary.
    rm -rf "$llama_server_cache.partial" && mkdir -p "$llama_server_cache.partial/src"
    .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-binary :all: \
      --no-deps --dest "$llama_server_cache.partial/src" "llama-cpp-python==$llama_server_version"
    tar -xzf "$llama_server_cache.partial/src"/llama_cpp_python-*.tar.gz -C "$llama_server_cache.partial/src"
    llama_server_src=$(ls -d "$llama_server_cache.partial/src"/llama_cpp_python-*/vendor/llama.cpp | head -n 1)
    llama_server_cmake_bin=$(command -v cmake || true)
    if [ -z "$llama_server_cmake_bin" ]; then
      # No system CMake: take it from its PyPI wheel, as pip did to build the wheel.
      .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        --target "$llama_server_cache.partial/cmake" "cmake>=3.18"
      llama_server_cmake_bin="$llama_server_cache.partial/cmake/cmake/data/bin/cmake"
    fi
    # $llama_server_cmake is a list of flags: word splitting is wanted here.
    # shellcheck disable=SC2086
    "$llama_server_cmake_bin" -S "$llama_server_src" -B "$llama_server_cache.partial/build" \
      $llama_server_cmake >/dev/null
    "$llama_server_cmake_bin" --build "$llama_server_cache.partial/build" --target llama-server \
      -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    cp "$llama_server_cache.partial/build/bin/llama-server" "$llama_server_cache.partial/llama-server"
    # The build proves itself once here; `manage.py tom_models --verify` does so again.
    "$llama_server_cache.partial/llama-server" --version >/dev/null 2>&1
    printf '%s\n' "llama-cpp-python==$llama_server_version $llama_server_cmake" > "$llama_server_cache.partial/FLAGS"
    rm -rf "$llama_server_cache.partial/src" "$llama_server_cache.partial/build" \
      "$llama_server_cache.partial/cmake"
    rm -rf "$llama_server_cache" && mv "$llama_server_cache.partial" "$llama_server_cache"
  else
    echo "installing llama-server built earlier for this target ($llama_server_cache)"
  fi
  cp "$llama_server_cache/llama-server" .venv/bin/llama-server.partial
  mv .venv/bin/llama-server.partial .venv/bin/llama-server
  rm -f .venv/.tom-llama-server-* && printf '%s\n' "$llama_server_version" > "$llama_server_stamp"
fi
