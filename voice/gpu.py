"""The GPU when there is one: CTranslate2's CUDA libraries, loaded from the ``gpu`` extra.

CTranslate2's PyPI wheels are built with CUDA 12 and open cuBLAS and cuDNN with
``dlopen`` when a model is put on the GPU. The ``gpu`` extra (added by
deploy/local/_gpu.sh when the install finds an NVIDIA GPU) installs them as the
``nvidia-cublas-cu12`` / ``nvidia-cudnn-cu12`` wheels, whose libraries sit in
``site-packages/nvidia/*/lib``: not on the loader's path. Setting ``LD_LIBRARY_PATH``
after the process started does nothing, so they are loaded here once, globally, before
the first model goes to the GPU; a later ``dlopen`` of the same soname finds them loaded.
On a host without them (every CPU host) this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# Load order matters: cuDNN's sub-libraries need cuBLAS(Lt) already loaded.
_LIBRARIES = (("cublas", "libcublasLt.so.12"), ("cublas", "libcublas.so.12"),
              ("cudnn", "libcudnn.so.9"))


def nvidia_library_dirs() -> dict[str, Path]:
    """The ``lib`` folder of each installed ``nvidia.<name>`` wheel, by name."""
    found: dict[str, Path] = {}
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for lib in sorted(Path(root).glob("*/lib")):
            found.setdefault(lib.parent.name, lib)
    return found


@functools.cache
def cuda_libraries_preload() -> tuple[str, ...]:
    """Load the ``gpu`` extra's CUDA libraries process-wide; the ones loaded, by file."""
    dirs = nvidia_library_dirs()
    loaded: list[str] = []
    for package, soname in _LIBRARIES:
        path = dirs.get(package, Path("/nonexistent")) / soname
        if not path.exists():
            continue
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:  # a broken wheel: CTranslate2 will say what it misses
            logger.warning("gpu.library_unloadable", extra={"library": soname,
                                                            "error": str(exc)})
            continue
        loaded.append(soname)
    return tuple(loaded)


def cuda_device_count() -> int:
    """NVIDIA GPUs CTranslate2 can use here; 0 without a driver or a CUDA build."""
    try:
        import ctranslate2

        count = int(ctranslate2.get_cuda_device_count())
    except Exception:  # no CUDA runtime at all is the CPU case, not an error
        return 0
    if count:
        cuda_libraries_preload()
    return count
