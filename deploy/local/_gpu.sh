# Sourced by _venv.sh: is there an NVIDIA GPU to build for? One code path uses it when it is
# there (issue 16): llama.cpp (the wheel and llama-server) compiled with CUDA for this
# host's GPU, faster-whisper in float16 on it (CTranslate2's PyPI wheels carry CUDA; the
# `gpu` extra adds the cuBLAS/cuDNN wheels they load), and the CPU build everywhere else.
# TOM_GPU=auto (default) builds for CUDA when `nvidia-smi` reports a GPU and a CUDA
# toolkit (nvcc) is installed; TOM_GPU=cpu never does; TOM_GPU=cuda fails the install
# when it cannot (a GPU host that silently got a CPU build would be slow, not broken).
# Sets: tom_gpu (cuda|cpu), tom_cuda_arch (compute capability without the dot, "90" for
# an H100/H200) and tom_gpu_cmake (the flags llama.cpp is built with for it). The arch is
# part of the flags, so the wheel and server caches key on it: another GPU compiles anew.
tom_gpu=cpu
tom_cuda_arch=""
tom_gpu_cmake=""
case "${TOM_GPU:-auto}" in
  cpu) ;;
  auto|cuda)
    if command -v nvidia-smi >/dev/null 2>&1; then
      tom_cuda_arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
        | head -n 1 | tr -d ' .\r')
    fi
    tom_nvcc=$(command -v nvcc 2>/dev/null || true)
    # NVIDIA's installer puts the toolkit in /usr/local/cuda without touching PATH.
    if [ -z "$tom_nvcc" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
      tom_nvcc="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
    fi
    case "$tom_cuda_arch" in
      ''|*[!0-9]*) tom_cuda_arch="" ;;
    esac
    if [ -n "$tom_cuda_arch" ] && [ -n "$tom_nvcc" ]; then
      tom_gpu=cuda
      # Only this GPU's architecture: all of them would add half an hour of nvcc.
      tom_gpu_cmake="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$tom_cuda_arch -DCMAKE_CUDA_COMPILER=$tom_nvcc"
      echo "NVIDIA GPU found (compute capability $tom_cuda_arch): building llama.cpp with CUDA"
    elif [ -n "$tom_cuda_arch" ]; then
      echo "NVIDIA GPU found but no CUDA toolkit (nvcc): llama.cpp is built for the CPU;" \
        "faster-whisper still uses the GPU" >&2
      tom_gpu=gpu-runtime-only
    fi
    if [ "${TOM_GPU:-auto}" = cuda ] && [ "$tom_gpu" != cuda ]; then
      echo "TOM_GPU=cuda, but no usable NVIDIA GPU and CUDA toolkit here" \
        "(nvidia-smi: ${tom_cuda_arch:-no GPU}; nvcc: ${tom_nvcc:-none})" >&2
      exit 1
    fi ;;
  *)
    echo "TOM_GPU must be auto, cuda or cpu, not '${TOM_GPU}'" >&2
    exit 1 ;;
esac
