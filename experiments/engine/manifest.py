"""The manifest of a run directory (`manifest.json`): per finished stage, the hash of its
inputs (config sections, input files, code) and of its outputs, and the versions and git
revision that wrote it. Only a manifest saelab wrote is read or rewritten."""

from __future__ import annotations

import hashlib
import json
import platform
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
