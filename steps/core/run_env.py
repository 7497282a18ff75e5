"""What a run's numbers depend on besides its inputs and settings, written next to them.

The same command on the same inputs gives the same bits only with the same torch thread
count, the same CPU kernels (MKL, oneDNN, numpy and torch pick AVX2 or AVX-512 code at run
time, and each sums floats in its own order) and the same library versions (README.md,
"Reproducibility"). A training program calls write(out_dir) when it starts work, so that
`<out_dir>/run_env.json` says which of these its outputs were made with:

    {"torch_threads": 2, "torch_interop_threads": 1,
     "env": {"OMP_NUM_THREADS": null, "MKL_NUM_THREADS": null, ...},
     "cpu": {"model": "...", "vendor": "...", "logical_cpus": 2, "isa": ["avx", "avx2", "fma", ...]},
     "torch_cpu_capability": "AVX2", "numpy_simd": ["AVX2", "AVX512F", ...],
     "versions": {"python": "3.10.13", "torch": "1.13.1", "k2": "1.23.4", ...},
     "platform": "Linux-...", "device": "cpu", "written": "2026-...", "earlier": [...]}

A resumed run appends to `earlier` what the file said before, so a run carried on by
another machine or thread count shows it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import time
from pathlib import Path

import torch

from steps.core import atomic

NAME = "run_env.json"
# Thread counts, kernel choice and hashing: the environment variables that change results.
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
            "ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
            "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED")
# /proc/cpuinfo flags that decide which SIMD kernels the libraries run.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512cd", "avx512bw",
             "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
PACKAGES = ("torch", "k2", "numpy", "lhotse", "kaldifst", "kaldi-native-fbank", "kaldi-decoder",
            "sentencepiece", "scipy", "lilcom", "h5py", "transformers")
# What must agree for two runs to give the same bits (the rest is context).
DETERMINING = ("torch_threads", "torch_interop_threads", "env", "cpu", "torch_cpu_capability",
               "numpy_simd", "versions", "device")


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU's model, vendor and SIMD flags (of the first processor listed)."""
    fields: dict[str, str] = {}
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if not line.strip():
                break  # one processor is enough: they are alike
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass  # not Linux: the model comes from platform below
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name") or platform.processor() or None,
            "vendor": fields.get("vendor_id"), "logical_cpus": os.cpu_count(),
            "isa": [f for f in ISA_FLAGS if f in flags]}


def torch_cpu_capability() -> str | None:
    """The SIMD level of torch's own kernels (DEFAULT, AVX2, AVX512)."""
    # torch.backends.cpu.get_cpu_capability() exists from torch 2.0 on; 1.13 (the pinned
    # stack) states the level only in its build summary, "CPU capability usage: AVX2".
    backend = getattr(torch.backends, "cpu", None)
    if backend is not None and hasattr(backend, "get_cpu_capability"):
        return backend.get_cpu_capability()
    found = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
    return found.group(1) if found else None


def numpy_simd() -> list[str] | None:
    """The SIMD targets numpy's dispatched loops use on this CPU."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2.x, 1.x
        try:
            umath = importlib.import_module(module)
        except ImportError:
            continue
        features = getattr(umath, "__cpu_features__", {})
        return [t for t in getattr(umath, "__cpu_dispatch__", []) if features.get(t)]
    return None


def versions() -> dict:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def describe(device: str | torch.device = "cpu") -> dict:
    device = torch.device(device)
    env = {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "cpu": cpu_info(),
        "torch_cpu_capability": torch_cpu_capability(),
        "numpy_simd": numpy_simd(),
        "versions": versions(),
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["versions"]["cuda"] = torch.version.cuda
        env["versions"]["cudnn"] = torch.backends.cudnn.version()
    return env


def differences(a: dict, b: dict) -> list[str]:
    """The keys of DETERMINING on which two descriptions differ."""
    return [key for key in DETERMINING if a.get(key) != b.get(key)]


def write(out_dir: str | Path, device: str | torch.device = "cpu", resumed: bool = False) -> dict:
    """Writes <out_dir>/run_env.json (atomically); with resumed, what it held before goes
    to `earlier`. Returns what was written."""
    path = Path(out_dir) / NAME
    env = describe(device)
    env["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    env["earlier"] = []
    if resumed and path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = None  # a damaged record is replaced
        if isinstance(before, dict):
            env["earlier"] = before.pop("earlier", []) + [before]
    atomic.write_text(path, json.dumps(env, indent=1) + "\n")
    return env
