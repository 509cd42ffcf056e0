"""The on-disk format of an activation cache: a folder of HDF5 shards with JSON metadata.

    CACHE/
      meta.json                 what produced it (model, tokenizer, hooks, dtype, token set, ...)
      shards/shard-00000.h5     the rows of sequences [i * S, (i + 1) * S), S = shard_sequences
      index.json                written last, when every shard is there: marks the cache complete

A shard holds, for its rows (one row per valid token, in sequence then position order):

    acts/<hook>      (rows, d_model)  float16 | float32 | uint16 (raw bfloat16 bits)
    token_ids        (rows,) int32
    seq, pos         (rows,) int32    global sequence index and position of each row
    labels/<name>    (rows,) int32    per-token labels given by the caller (e.g. the task's)

Every shard is written under a temporary name and renamed when complete, so a shard file
that exists is whole; `kill -9` at any moment leaves at most a temporary file, which the
next writer removes. A cache without index.json is incomplete: readers refuse it (unless
asked to read what is there) and re-running the writer resumes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import zlib
from pathlib import Path
from typing import Literal, get_args

import numpy as np

FORMAT_VERSION = 1
CacheDtype = Literal["float16", "float32", "bfloat16"]
Compression = Literal["lzf", "gzip"]
DTYPES = get_args(CacheDtype)
STORAGE_DTYPES = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}  # bfloat16: raw bits
COMPRESSIONS = (None, *get_args(Compression))
META, INDEX, SHARDS = "meta.json", "index.json", "shards"


class CacheError(ValueError):
    """A cache that cannot be used as asked (incomplete, corrupted, mismatched)."""


class CacheLock:
    """An exclusive lock on a cache folder for one writing job (two would delete each
    other's temporaries)."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.f = open(out / ".lock", "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise CacheError(f"another writer is filling {out}; wait for it to finish") from None

    def release(self) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.h5"


def shard_path(cache: Path, i: int) -> Path:
    return cache / SHARDS / shard_name(i)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise CacheError(f"{path} is unreadable ({e}); the cache is damaged: delete it and write it again") from None


def array_hash(arrays) -> str:
    """Content hash of a sequence of integer arrays (token ids, labels): lengths and values."""
    arrays = list(arrays)
    h = hashlib.sha256(np.array([len(a) for a in arrays], dtype=np.int64).tobytes())
    if arrays:
        h.update(np.concatenate([np.asarray(a).ravel() for a in arrays]).astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def file_checksum(path: Path) -> str:
    """CRC-32 of a file's bytes (a shard's checksum in index.json): catches corruption, not
    tampering, at ~2 GB/s, so checksumming never slows the writer noticeably."""
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"
