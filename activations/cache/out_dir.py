"""The folder a cache is written into: what counts as a cache (refuse anything else before
any work), removing only a cache's own files, and preparing the folder for a writer."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from activations.atomic import write_json_atomic
from activations.cache.format import INDEX, META, SHARDS, CacheError, read_json


def is_fresh(out: Path) -> bool:
    """True for a folder a killed writer left before writing meta.json: nothing but an empty
    shards/ folder, temporaries and the lock."""
    for p in out.iterdir():
        if p.name.startswith(".") or (p.name == SHARDS and p.is_dir() and
                                      all(q.name.startswith(".") for q in p.iterdir())):
            continue
        return False
    return True


def foreign_entries(out: Path) -> list[str]:
    """Entries of a cache folder that no cache writer made (the user's files beside it)."""
    ours = {META, INDEX, SHARDS, ".lock"}
    extra = [p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith(f".{META}.tmp-")
             and not p.name.startswith(f".{INDEX}.tmp-")]
    if (out / SHARDS).is_dir():
        extra += [f"{SHARDS}/{p.name}" for p in (out / SHARDS).iterdir()
                  if not re.fullmatch(r"\.?shard-\d+\.h5(\.crc32)?(\.tmp-\d+)?", p.name)]
    return sorted(extra)


def check_cache_out(out: str | Path) -> None:
    """Refuse, before any work, a cache path that is a file, a folder holding something
    other than an activation cache, or a cache with files beside it that the writer did not
    make: never removed, --overwrite or not, as they are not ours."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CacheError(f"{out} is a file, not a cache folder; choose a new folder")
    if not out.exists() or is_fresh(out):
        return
    meta = None
    if (out / META).is_file():
        try:
            meta = json.loads((out / META).read_bytes())
        except (OSError, ValueError):
            meta = None
    if not (isinstance(meta, dict) and {"format_version", "hooks", "write_config"} <= set(meta)):
        raise CacheError(f"{out} exists and is not an activation cache; it was left untouched: use another path")
    extra = foreign_entries(out)
    if extra:
        raise CacheError(f"{out} holds a cache and files the cache writer did not make ({', '.join(extra[:5])}); "
                         "it was left untouched: move them, or use another path")


def remove_cache(out: Path) -> None:
    """Remove a cache folder's own files (`check_cache_out` has refused one holding anything
    else); index.json goes first, so a kill midway never leaves a folder that claims to be
    complete."""
    (out / INDEX).unlink(missing_ok=True)
    shutil.rmtree(out / SHARDS, ignore_errors=True)
    (out / META).unlink(missing_ok=True)


def prepare_out(out: Path, meta: dict, overwrite: bool) -> None:
    """Rank 0: check what `out` holds, then write meta.json (first) and shards/."""
    if (out / META).is_file():
        old = read_json(out / META)
        if old != meta:
            if not overwrite:
                diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
                raise CacheError(f"{out} holds a cache written with other settings (differs in: "
                                 f"{', '.join(diff)}); use another path or overwrite it")
            remove_cache(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / META, meta)
    (out / SHARDS).mkdir(exist_ok=True)
    for stale in (out / SHARDS).glob(".*.tmp-*"):  # left by a killed writer; never a finished shard
        stale.unlink()


def index_matches(out: Path) -> bool:
    """An index whose shards are all there with their recorded sizes (else: write again)."""
    try:
        index = read_json(out / INDEX)
        return all((out / SHARDS / s["file"]).is_file() and (out / SHARDS / s["file"]).stat().st_size == s["bytes"]
                   for s in index["shards"])
    except (KeyError, TypeError, CacheError):
        return False
