"""Writing outputs so that an interrupted run never leaves one that looks finished:
everything is written under a temporary name (`.NAME.tmp-PID`) and renamed when complete.

It sits in the lowest package so that every layer (caches, SAEs, the pipeline) uses the
same mechanism."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def write_json_atomic(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=1))


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def temp_dir(final: Path) -> Path:
    """An empty temporary folder beside `final`, to be moved into place by `replace_dir`."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished temporary folder into place. An existing `final` is first renamed to
    `.NAME.old-PID` and removed last, so at every moment either the old or the new folder
    is complete (`restore_old` puts the old one back if a kill lands in between)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def clean_temporaries(folder: Path) -> None:
    """Remove what an interrupted writer left in `folder` and its subfolders: unfinished
    `.tmp-` files or folders go; a `.old-` folder whose replacement never arrived is put
    back, any other is removed. Never touches a finished output."""
    for old in sorted(folder.glob("**/.*.old-*")):
        final = old.with_name(old.name[1:old.name.rindex(".old-")])
        if not final.exists():
            os.replace(old, final)
        else:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for tmp in sorted(folder.glob("**/.*.tmp-*"), reverse=True):
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
