"""Reading an activation cache: sequential batches, shuffled batches with bounded memory,
label filters (the iterators themselves are `streams`; pairs of caches are `paired`).

Every reader is a plain Python iterator of float32 tensors `(B, d_model)` (pairs: a
tuple of two), which is what SAELens' `SAETrainer` takes as its data provider.
Shuffling reads whole chunk-aligned blocks in random order into a buffer and shuffles
rows inside it: random single-row reads from HDF5 are two orders of magnitude slower.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
import torch

from activations.cache.format import INDEX, META, SHARDS, CacheError, file_checksum, read_json
from activations.cache.streams import Where, stream_batches, stream_shuffled

MAX_OPEN = 64  # shard files kept open at once per cache


@dataclass(frozen=True)
class Block:
    shard: int
    start: int
    stop: int


class ActivationCache:
    """A finished cache folder, opened for reading (`allow_incomplete` reads the shards present;
    `verify` checks every shard's checksum first, reading the whole cache once)."""

    def __init__(self, path: str | Path, allow_incomplete: bool = False, verify: bool = False):
        self.path = Path(path)
        if not (self.path / META).is_file():
            raise CacheError(f"{self.path} is not an activation cache (no {META}); write one with `saelab cache`")
        self._open: OrderedDict[int, h5py.File] = OrderedDict()
        try:
            self._load(allow_incomplete, verify)
        except BaseException as e:
            self.close()
            if isinstance(e, CacheError) or not isinstance(e, (KeyError, TypeError, ValueError)):
                raise
            raise CacheError(f"{self.path}: malformed cache metadata ({type(e).__name__}: {e}); write it again") from None

    def _load(self, allow_incomplete: bool, verify: bool) -> None:
        self.meta = read_json(self.path / META)
        self.hooks: list[str] = self.meta["hooks"]
        self.d_model: int = self.meta["d_model"]
        self.dtype: str = self.meta["write_config"]["dtype"]
        self.chunk_rows: int = self.meta["write_config"]["chunk_rows"]
        self.complete = (self.path / INDEX).is_file()
        if not self.complete and not allow_incomplete:
            present = len(list((self.path / SHARDS).glob("shard-*.h5")))
            raise CacheError(f"{self.path} is incomplete ({present} of {self.meta['n_shards']} shards): "
                             "re-run the command that wrote it to resume")
        if verify and not self.complete:
            raise CacheError(f"{self.path} is incomplete: there are no checksums to verify yet")
        if self.complete:
            index = read_json(self.path / INDEX)
            self._paths = [self.path / SHARDS / s["file"] for s in index["shards"]]
            for s, p in zip(index["shards"], self._paths):
                if not p.is_file() or p.stat().st_size != s["bytes"]:
                    raise CacheError(f"shard {p} is missing or truncated ({p.stat().st_size if p.is_file() else 0} "
                                     f"of {s['bytes']} bytes); delete {self.path / INDEX} and re-run the writer")
                if verify and "crc32" not in s:
                    raise CacheError(f"{self.path} has no shard checksums (written by an older saelab); "
                                     "write it again to be able to verify it")
                if verify and file_checksum(p) != s["crc32"]:
                    raise CacheError(f"shard {p} is corrupted (its checksum differs from {INDEX}); delete the shard "
                                     f"and {self.path / INDEX}, then re-run the writer")
            self.shard_rows = [int(s["rows"]) for s in index["shards"]]
            # An index that disagrees with meta.json (edited, or of another cache) is damaged.
            if sum(self.shard_rows) != self.meta["n_rows"] or len(self.shard_rows) != self.meta["n_shards"]:
                raise CacheError(f"{self.path / INDEX} lists {sum(self.shard_rows)} rows in {len(self.shard_rows)} "
                                 f"shards but {META} says {self.meta['n_rows']} rows in {self.meta['n_shards']}; "
                                 f"the cache is damaged: delete {self.path / INDEX} and re-run the writer")
            if verify:
                self._verify_rows()
        else:
            self._paths = sorted((self.path / SHARDS).glob("shard-*.h5"))
            self.shard_rows = [int(self._file(i).attrs["n_rows"]) for i in range(len(self._paths))]
        self.offsets = np.concatenate([[0], np.cumsum(self.shard_rows)]).astype(np.int64)
        self.n_rows = int(self.offsets[-1])

    def _verify_rows(self) -> None:
        """Every shard holds the rows its index entry says, in every dataset."""
        for i, rows in enumerate(self.shard_rows):
            f = self._file(i)
            try:
                lengths = {name: len(f[name]) for name in ("token_ids", "seq", "pos")}
                lengths |= {f"acts/{h}": len(f["acts"][h]) for h in self.hooks}
                lengths |= {f"labels/{n}": len(d) for n, d in f.get("labels", {}).items()}
            except KeyError as e:
                raise CacheError(f"shard {self._paths[i]} lacks a dataset ({e}); the cache is damaged: delete the "
                                 f"shard and {self.path / INDEX}, then re-run the writer") from None
            bad = {k: v for k, v in lengths.items() if v != rows} | (
                {"attrs n_rows": int(f.attrs["n_rows"])} if int(f.attrs["n_rows"]) != rows else {})
            if bad:
                held = (f"{set(bad.values()).pop()} rows" if len(set(bad.values())) == 1 else
                        ", ".join(f"{k}: {v}" for k, v in bad.items()))
                raise CacheError(f"shard {self._paths[i]} holds {held} where {INDEX} says {rows} rows; the cache is "
                                 f"damaged: delete {self.path / INDEX} and re-run the writer")

    def _file(self, i: int) -> h5py.File:
        """Shard i's open file. At most MAX_OPEN stay open (least recently used closed
        first), so any number of shards fits under the open-files limit."""
        f = self._open.get(i)
        if f is not None:
            self._open.move_to_end(i)
            return f
        if len(self._open) >= MAX_OPEN:
            self._open.popitem(last=False)[1].close()
        p = self._paths[i]
        try:
            # No chunk cache: reads are whole chunks, and a cache per open shard would grow
            # memory with the number of shards (each caches its last, partial chunk).
            f = h5py.File(p, "r", rdcc_nbytes=0)
        except OSError as e:
            if getattr(e, "errno", None) is not None and not isinstance(e, FileNotFoundError):
                raise CacheError(f"cannot open shard {p}: {e.strerror or e}") from None  # EMFILE, EACCES, ...
            raise CacheError(f"shard {p} is unreadable ({e}); delete it and re-run the writer") from None
        self._open[i] = f
        return f

    # ---- context manager --------------------------------------------------------------
    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"ActivationCache({str(self.path)!r}, rows={self.n_rows}, d_model={self.d_model}, "
                f"hooks={self.hooks}, dtype={self.dtype}, complete={self.complete})")

    # ---- columns ------------------------------------------------------------------------
    def check_hook(self, hook: str) -> None:
        if hook not in self.hooks:
            raise CacheError(f"hook {hook!r} is not in this cache; it holds {self.hooks}")

    def check_where(self, where: Where) -> None:
        if where is None or callable(where):
            return
        known = ["token_ids", "seq", "pos"] + self.meta["label_names"]
        bad = [k for k in where if k not in known]
        if bad:
            raise CacheError(f"no column {bad[0]!r} to filter on; columns: {', '.join(known)}")

    def _read(self, shard: int, name: str, start: int, stop: int) -> np.ndarray:
        try:
            return self._file(shard)[name][start:stop]
        except (OSError, KeyError) as e:
            raise CacheError(f"cannot read {name} from {self._paths[shard]} ({e}); the shard is "
                             "damaged: delete it and re-run the writer") from None

    def column(self, name: str) -> np.ndarray:
        """A per-row column over the whole cache: token_ids, seq, pos, or a label name."""
        key = name if name in ("token_ids", "seq", "pos") else f"labels/{name}"
        if name not in ("token_ids", "seq", "pos") and name not in self.meta["label_names"]:
            raise CacheError(f"no column {name!r}; columns: token_ids, seq, pos, {', '.join(self.meta['label_names'])}")
        return np.concatenate([self._read(i, key, 0, n) for i, n in enumerate(self.shard_rows)])

    def _columns(self, shard: int, start: int, stop: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        return {n: self._read(shard, n if n in ("token_ids", "seq", "pos") else f"labels/{n}", start, stop)
                for n in names}

    def to_float(self, a: np.ndarray) -> torch.Tensor:
        """Stored rows -> a new float32 tensor. The memory comes from numpy on purpose: fresh
        torch allocations per batch fragmented glibc's heap (RSS grew ~0.8x the shuffle
        buffer in benchmarks/bench_cache.py); torch does the (fast) conversion into it."""
        out = torch.from_numpy(np.empty(a.shape, dtype=np.float32))
        src = torch.from_numpy(np.ascontiguousarray(a))
        out.copy_(src.view(torch.bfloat16) if self.dtype == "bfloat16" else src)
        return out

    def activations(self, hook: str, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Rows [start, stop) of one hook as float32 (rows, d_model)."""
        self.check_hook(hook)
        stop = self.n_rows if stop is None else stop
        parts = []
        for i in range(len(self._paths)):
            a, b = max(start, self.offsets[i]), min(stop, self.offsets[i + 1])
            if a < b:
                parts.append(self._read(i, f"acts/{hook}", int(a - self.offsets[i]), int(b - self.offsets[i])))
        return self.to_float(np.concatenate(parts) if parts else np.zeros((0, self.d_model), np.float16))

    def blocks(self) -> list[Block]:
        """Chunk-aligned row ranges: the units of random reading."""
        return [Block(i, s, min(s + self.chunk_rows, n)) for i, n in enumerate(self.shard_rows)
                for s in range(0, n, self.chunk_rows)]

    def mask(self, block: Block, where: Where) -> np.ndarray | None:
        """Rows of `block` that pass the filter (None: all)."""
        if where is None:
            return None
        n = block.stop - block.start
        if callable(where):
            names = ["token_ids", "seq", "pos"] + self.meta["label_names"]
            keep = np.asarray(where(self._columns(block.shard, block.start, block.stop, names)))
            if keep.dtype != bool or keep.shape != (n,):
                raise ValueError(f"a `where` function must return a bool mask of shape ({n},) for a block of "
                                 f"{n} rows, got {keep.dtype} {keep.shape}")
            return keep
        cols = self._columns(block.shard, block.start, block.stop, list(where))
        keep = np.ones(block.stop - block.start, dtype=bool)
        for name, want in where.items():
            keep &= np.isin(cols[name], np.atleast_1d(want))
        return keep

    def read_block(self, hook: str, block: Block, keep: np.ndarray | None) -> np.ndarray:
        a = self._read(block.shard, f"acts/{hook}", block.start, block.stop)
        return a if keep is None else a[keep]

    def read_block_into(self, hook: str, block: Block, keep: np.ndarray | None, out: np.ndarray) -> int:
        """Read a block's (kept) rows into the front of `out`; returns how many. Without a
        filter HDF5 writes straight into `out`: no temporary array, so memory stays flat."""
        if keep is not None:
            rows = self.read_block(hook, block, keep)
            out[:len(rows)] = rows
            return len(rows)
        n = block.stop - block.start
        try:
            self._file(block.shard)[f"acts/{hook}"].read_direct(out, np.s_[block.start:block.stop], np.s_[0:n])
        except (OSError, KeyError) as e:
            raise CacheError(f"cannot read acts/{hook} from {self._paths[block.shard]} ({e}); the shard "
                             "is damaged: delete it and re-run the writer") from None
        return n

    # ---- iterators ----------------------------------------------------------------------
    def batches(self, hook: str, batch_size: int, where: Where = None) -> Iterator[torch.Tensor]:
        """Sequential float32 batches (B, d_model) in row order; the last may be smaller."""
        return (b[0] for b in stream_batches([self], hook, batch_size, where))

    def shuffled(self, hook: str, batch_size: int, buffer_rows: int = 262_144, seed: int = 0,
                 where: Where = None, epochs: int | None = None) -> Iterator[torch.Tensor]:
        """Shuffled float32 batches (B, d_model), forever (or `epochs` passes), memory bounded
        by `buffer_rows` rows plus one chunk; the same seed gives the same batches."""
        return (b[0] for b in stream_shuffled([self], hook, batch_size, buffer_rows, seed, where, epochs))


def open_cache(path: str | Path, allow_incomplete: bool = False, verify: bool = False) -> ActivationCache:
    return ActivationCache(path, allow_incomplete, verify)
