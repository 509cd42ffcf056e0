"""The manifest of a run directory (`manifest.json`): per finished stage, the hash of its
inputs (config sections, input files, code) and of its outputs, and the versions, machine and
git revision that wrote it. Only a manifest saelab wrote is read or rewritten."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path

MANIFEST_VERSION = 1


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def files_hash(root: Path, files: list[Path]) -> dict[str, str]:
    """{path relative to `root`: hash} of `files`."""
    return {str(p.relative_to(root)): file_hash(p) for p in sorted(files)}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("saelab", "torch", "transformers", "transformer-lens", "sae-lens", "numpy", "h5py", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    """What the run ran on, for a number that differs between machines: the CPU, how many
    cores and torch threads, the BLAS/LAPACK behind torch and numpy (MKL and OpenBLAS sum in
    different orders, so float results differ in the last bits), torch's CPU kernels
    (AVX2/AVX512) and any GPUs with the CUDA version. Every key is always there; what cannot
    be read is None."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "arch": platform.machine() or None,
        "system": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": torch_blas(torch.__config__.show()),
        "numpy_blas": _numpy_blas(),
        "cuda": torch.version.cuda if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
    }


def _cpu_model() -> str | None:
    """/proc/cpuinfo's "model name" on Linux (platform.processor() says only "x86_64" there)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def torch_blas(show: str) -> dict:
    """The BLAS and LAPACK torch was built with, from `torch.__config__.show()`'s build
    settings ("BLAS_INFO=mkl, ... LAPACK_INFO=mkl"), and its lines naming MKL and OpenMP."""
    def setting(key: str) -> str | None:
        m = re.search(rf"\b{key}=([^,\s]+)", show)
        return m.group(1) if m else None

    def line(pattern: str) -> str | None:
        m = re.search(rf"^\s*-\s*(.*{pattern}.*)$", show, re.MULTILINE)
        return m.group(1).strip() if m else None

    return {"blas": setting("BLAS_INFO"), "lapack": setting("LAPACK_INFO"), "mkl": line("Math Kernel Library"),
            "openmp": line("OpenMP")}


def _numpy_blas() -> dict:
    """numpy's BLAS and LAPACK ("scipy-openblas 0.3.31"), from `numpy.show_config(mode="dicts")`
    (numpy >= 1.26); None each where numpy cannot say."""
    import numpy

    try:
        deps = numpy.show_config(mode="dicts").get("Build Dependencies", {})
    except TypeError:  # an older numpy without mode=
        return {"blas": None, "lapack": None}
    out = {}
    for lib in ("blas", "lapack"):
        d = deps.get(lib) or {}
        out[lib] = " ".join(str(d[k]) for k in ("name", "version") if d.get(k)) or None
    return out


def git_revision() -> str | None:
    """The source tree's git commit (with `-dirty` when it has local changes), if any."""
    src = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_manifest(path: Path) -> dict | None:
    """The manifest at `path` if saelab wrote it (a JSON object with manifest_version and a
    stages mapping), else None; a manifest.json that is not ours is never rewritten."""
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and "manifest_version" in manifest and isinstance(manifest.get("stages"), dict)
    return manifest if ok else None
