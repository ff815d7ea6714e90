"""The compiled dependencies are built for any x86-64 CPU, and the install proves they run.

llama.cpp's default build (-march=native) on a CPU that reports AMX compiled AMX tile
code that died with SIGILL at the first long prompt; on this test machine (AVX-512) a
native build holds AVX-512 code that a customer's AVX2-only server cannot run.
deploy/local/_venv.sh builds it for x86-64-v3 with no AVX-512, no AMX and no run-time
variants (GGML_BACKEND_DL=OFF), so any such instruction in the libraries would run
unconditionally: the disassembly must hold none.
"""

from __future__ import annotations

import hashlib
import importlib.util
import platform
import re
import shutil
import subprocess
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from tomsite.runner import exit_reason
from voice import models
from voice.native_check import MIN_PROMPT_TOKENS, native_checks_run

# AT&T syntax, as objdump prints it. AVX-512 shows as zmm registers, opmask registers
# (%k0-%k7, also as {%k1} write masks) or xmm/ymm 16-31, which only EVEX can encode;
# VNNI dot products exist only as AVX-512 VNNI or AVX-VNNI, neither of them in v3.
FORBIDDEN = {
    "AMX tile instructions": re.compile(
        r"\b(ldtilecfg|sttilecfg|tileloaddt?1?|tilestored|tilezero|tilerelease|tdpb[su][su]d|"
        r"tdpbf16ps|tdpfp16ps)\b"),
    "AVX-512 zmm registers": re.compile(r"%zmm\d"),
    "AVX-512 opmask registers": re.compile(r"%k[0-7]\b"),
    "AVX-512 registers 16-31": re.compile(r"%[xy]mm(1[6-9]|2\d|3[01])\b"),
    "VNNI dot products": re.compile(r"\bvpdp(bus|wss)ds?\b"),
}


def forbidden_instructions(library: Path) -> dict[str, list[str]]:
    """Instructions of ``library`` outside x86-64-v3, by kind (a few examples of each)."""
    disassembly = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
        text=True, check=True).stdout
    found: dict[str, list[str]] = {}
    for line in disassembly.splitlines():
        for kind, pattern in FORBIDDEN.items():
            if pattern.search(line) and len(found.setdefault(kind, [])) < 3:
                found[kind].append(line.strip())
    return found


def llama_libraries() -> list[Path]:
    """The shared libraries llama-cpp-python installed, each once (it ships copies)."""
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.origin, "llama-cpp-python is not installed"
    seen, libraries = set(), []
    for path in sorted(Path(spec.origin).parent.rglob("*.so*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file() and digest not in seen:
            seen.add(digest)
            libraries.append(path)
    return libraries


needs_objdump = pytest.mark.skipif(
    shutil.which("objdump") is None or platform.machine() != "x86_64",
    reason="needs binutils' objdump on x86-64 (deploy/local/test.sh installs it)")


@needs_objdump
@pytest.mark.models
def test_llama_cpp_holds_no_avx512_or_amx_code() -> None:
    libraries = llama_libraries()
    assert any(p.name.startswith("libggml-cpu") for p in libraries), libraries
    found = {p.name: f for p in libraries if (f := forbidden_instructions(p))}
    assert found == {}


@needs_objdump
def test_the_scan_finds_avx512_where_there_is_some() -> None:
    # NumPy ships AVX-512 sort and math kernels behind a run-time CPU check: the scan
    # above would report exactly such code in a native llama.cpp build.
    numpy_core = next(Path(np.__file__).parent.glob("_core/_multiarray_umath*.so"))
    found = forbidden_instructions(numpy_core)
    assert "AVX-512 zmm registers" in found
    assert all("zmm" in line for line in found["AVX-512 zmm registers"])


@pytest.mark.models
@pytest.mark.slow
def test_the_install_check_runs_every_compiled_library_on_a_long_prompt() -> None:
    for name in models.required():
        models.assemble(name)
    out = StringIO()
    call_command("tom_models", "--verify", stdout=out)
    lines = out.getvalue()
    for name in ("tts", "vad", "stt", "llm"):
        assert re.search(rf"^  {name}\s+ok\b", lines, re.MULTILINE), lines
    tokens = int(re.search(r"llm\s+ok\s+prompt_tokens (\d+)", lines)[1])  # type: ignore[index]
    assert tokens >= MIN_PROMPT_TOKENS >= 400  # past a full batch: the path that crashed
    assert "compiled libraries verified in" in lines


def test_a_check_that_dies_is_told_in_words(tmp_path: Path) -> None:
    # A stand-in interpreter that dies as a mis-built llama.cpp does, mid-check.
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\n"
                        "echo 'tom-native-check:begin tts'\n"
                        "echo 'tom-native-check:ok tts {}'\n"
                        "echo 'tom-native-check:begin llm'\n"
                        "echo 'ggml_backend_amx_mul_mat' >&2\n"
                        "kill -ILL $$\n")
    crashing.chmod(0o755)
    report = native_checks_run(names=["tts", "llm", "stt"], python=str(crashing))
    assert not report.ok and report.returncode == -4
    assert [(s.name, s.state) for s in report.steps] == [
        ("tts", "ok"), ("llm", "crashed"), ("stt", "not run")]
    (failure,) = report.failures()
    assert failure.startswith("llm: the check process died while running the llm check: "
                              "killed by SIGILL (illegal instruction: a compiled library uses "
                              "CPU instructions this CPU cannot run")
    assert "rm -f .venv/.tom-llama-*" in failure
    assert "ggml_backend_amx_mul_mat" in report.output_tail


def test_a_check_that_hangs_is_stopped_and_named(tmp_path: Path) -> None:
    hanging = tmp_path / "python"
    hanging.write_text("#!/bin/sh\necho 'tom-native-check:begin stt'\nexec sleep 30\n")
    hanging.chmod(0o755)
    report = native_checks_run(names=["stt"], python=str(hanging), timeout_s=1)
    assert not report.ok and report.returncode is None
    (failure,) = report.failures()
    assert "did not finish the stt check within 1 s and was stopped" in failure


def test_exit_statuses_in_words() -> None:
    assert exit_reason(-11).startswith("killed by SIGSEGV (segmentation fault")
    # bash reports daphne killed by SIGILL as 132.
    assert exit_reason(132).startswith("exited with code 132 (128 + SIGILL) (illegal instruction")
    assert exit_reason(3) == "exited with code 3"


def test_an_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown native check"):
        native_checks_run(names=["gpu"])
