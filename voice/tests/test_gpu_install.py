"""The install's GPU path (deploy/local/_gpu.sh), run with fake ``nvidia-smi``/``nvcc``.

No GPU is lent to CI, so the decision is proven here against what the NVIDIA tools print
on a GPU host (an H200 reports compute capability "9.0"), and the CPU build is proven by
every other test, which runs on the wheel this script chose.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from voice import gpu

REPO = Path(__file__).resolve().parents[2]
PROBE = ('source deploy/local/_gpu.sh; printf "%s|%s|%s\\n" '
         '"$tom_gpu" "$tom_cuda_arch" "$tom_gpu_cmake"')


def _fake_tool(folder: Path, name: str, output: str) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\n")
    script.chmod(0o755)


def _probe(tmp_path: Path, *, tools: dict[str, str], tom_gpu: str = "auto"
           ) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, output in tools.items():
        _fake_tool(bin_dir, name, output)
    # Only the fakes and the basic tools: this host's own PATH may hold real ones.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TOM_GPU": tom_gpu, "HOME": str(tmp_path),
           "CUDA_HOME": str(tmp_path / "no-cuda")}
    return subprocess.run(["bash", "-c", PROBE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_a_gpu_with_a_toolkit_builds_llama_cpp_for_that_gpu_only(tmp_path: Path) -> None:
    done = _probe(tmp_path, tools={"nvidia-smi": "9.0", "nvcc": "nvcc: release 13.0"})
    assert done.returncode == 0, done.stderr
    kind, arch, flags = done.stdout.strip().splitlines()[-1].split("|")
    assert (kind, arch) == ("cuda", "90")
    assert "-DGGML_CUDA=ON" in flags.split()
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in flags.split()
    assert f"-DCMAKE_CUDA_COMPILER={tmp_path / 'bin' / 'nvcc'}" in flags.split()


def test_no_gpu_is_the_cpu_build(tmp_path: Path) -> None:
    done = _probe(tmp_path, tools={"nvcc": "nvcc"})  # a toolkit without a GPU
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "cpu||"


def test_a_gpu_without_a_toolkit_keeps_llama_cpp_on_the_cpu_and_says_so(
        tmp_path: Path) -> None:
    done = _probe(tmp_path, tools={"nvidia-smi": "8.6"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "gpu-runtime-only|86|"
    assert "no CUDA toolkit" in done.stderr


def test_tom_gpu_cpu_ignores_the_gpu(tmp_path: Path) -> None:
    done = _probe(tmp_path, tools={"nvidia-smi": "9.0", "nvcc": "nvcc"}, tom_gpu="cpu")
    assert done.stdout.strip().splitlines()[-1] == "cpu||"


@pytest.mark.parametrize("tom_gpu", ["cuda", "rocm"])
def test_an_unmet_or_unknown_gpu_demand_fails_the_install_with_the_reason(
        tmp_path: Path, tom_gpu: str) -> None:
    done = _probe(tmp_path, tools={}, tom_gpu=tom_gpu)
    assert done.returncode == 1
    assert "TOM_GPU" in done.stderr


def test_venv_script_adds_the_gpu_flags_and_extra_from_the_probe() -> None:
    # _venv.sh must take the probe's flags into the llama.cpp build (and so into the
    # wheel's cache key) and the gpu extra into the install.
    script = (REPO / "deploy/local/_venv.sh").read_text()
    assert "source deploy/local/_gpu.sh" in script
    assert 'llama_cmake="$llama_cmake${tom_gpu_cmake:+ $tom_gpu_cmake}"' in script
    assert script.index("_gpu.sh") < script.index("llama_hash=")


def test_cpu_host_loads_no_cuda_library() -> None:
    if gpu.nvidia_library_dirs():
        pytest.skip("this host has the gpu extra installed")
    assert gpu.cuda_libraries_preload() == ()
    assert gpu.cuda_device_count() == 0 or os.path.exists("/dev/nvidia0")
