"""The CPU code path of a run: the processor and the kernels that torch, oneDNN and BLAS chose on it.

The same seed and thread count give the same numbers on one machine, but not across
machines: torch (ATen) and oneDNN pick their kernels by the processor's instruction sets
(``DEFAULT``, ``AVX2``, ``AVX512``, ...), their float32 sums then round differently, and
training amplifies the difference as much as a new seed does. :func:`code_path` records
what a run computed with, so that every results file says it; :func:`lower_code_path` is
the environment of a second code path on the same machine (one level below), with which
:mod:`infoclust.book.crosscheck` re-executes the chapters.

These variables choose the code path when a process starts (:data:`CODE_PATH_ENV`):
``ATEN_CPU_CAPABILITY`` (torch's own kernels: ``default``, ``avx2``, ``avx512``),
``ONEDNN_MAX_CPU_ISA`` (oneDNN's convolutions: ``SSE41``, ``AVX``, ``AVX2``,
``AVX512_CORE``, ...), ``MKL_ENABLE_INSTRUCTIONS`` and ``MKL_CBWR`` (MKL, torch's BLAS on
x86), ``OPENBLAS_CORETYPE`` (NumPy's and SciPy's OpenBLAS) and ``NPY_DISABLE_CPU_FEATURES``
(NumPy's own kernels).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_info

__all__ = ["CODE_PATH_ENV", "LOWER_CODE_PATH", "processor", "code_path", "lower_code_path"]

#: Environment variables that change the code path of a process (read when it starts).
CODE_PATH_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
)

#: torch's CPU capability -> the environment of the code path one level below it (x86-64).
LOWER_CODE_PATH = {
    "AVX512": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "AVX2": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def processor() -> str:
    """The processor's model name (``/proc/cpuinfo``'s ``model name`` where there is one).

    Returns
    -------
    str
        The model name, else what :mod:`platform` knows, else ``"unknown"``.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _torch_build() -> dict[str, str | None]:
    """oneDNN's version and torch's BLAS (name and, for MKL, its version) from ``torch.__config__``."""
    text = torch.__config__.show()
    onednn = re.search(r"(?:oneDNN|MKL-DNN) (v[\w.]+)", text)
    blas = re.search(r"BLAS_INFO=(\w+)", text)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", text)
    name = blas.group(1) if blas else None
    if name == "mkl" and mkl:
        name = f"mkl {mkl.group(1)}"
    return {"onednn": onednn.group(1) if onednn else None, "torch_blas": name}


def code_path() -> dict[str, Any]:
    """What this process computes with on the CPU, as a JSON-ready dict.

    Returns
    -------
    dict
        ``processor`` (model name), ``machine`` (architecture), ``cpu_capability`` (torch's,
        :func:`torch.backends.cpu.get_cpu_capability`), ``torch`` (version),
        ``torch_threads``, ``onednn`` (version, None without it), ``torch_blas`` (the BLAS
        torch was built with), ``blas`` (each BLAS library loaded in the process, e.g.
        NumPy's OpenBLAS, with its version, kernel architecture and threads, from
        threadpoolctl) and ``overrides`` (the variables of :data:`CODE_PATH_ENV` that are set).
    """
    blas = sorted(
        (
            {
                "library": info.get("prefix"),
                "version": info.get("version"),
                "architecture": info.get("architecture"),
                "threads": info.get("num_threads"),
            }
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        ),
        key=lambda b: (str(b["library"]), str(b["version"])),
    )
    return {
        "processor": processor(),
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        **_torch_build(),
        "blas": blas,
        "overrides": {name: os.environ[name] for name in CODE_PATH_ENV if os.environ.get(name)},
    }


def lower_code_path(capability: str | None = None) -> dict[str, str]:
    """The environment of the code path one level below ``capability`` (default: this process's).

    ``AVX512`` goes to ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` and ``AVX2`` to
    ``ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41`` (:data:`LOWER_CODE_PATH`). A
    process started with it computes with other kernels on the same machine.

    Parameters
    ----------
    capability : str or None
        torch's CPU capability (``"AVX512"``, ``"AVX2"``, ...); None: this process's.

    Returns
    -------
    dict of str to str
        The environment variables to set, by name.

    Raises
    ------
    ValueError
        For a capability with no lower level known here (``DEFAULT``, or not x86-64): set
        the variables by hand.
    """
    capability = capability or torch.backends.cpu.get_cpu_capability()
    if capability not in LOWER_CODE_PATH:
        raise ValueError(
            f"no lower code path is known below torch's CPU capability {capability!r} "
            f"(known: {', '.join(LOWER_CODE_PATH)}); set ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA yourself"
        )
    return dict(LOWER_CODE_PATH[capability])
