"""Writing an activation cache: run token batches through a TransformerBridge and store
every valid token's activation at each hook (see `format` for the layout).

Resumable and safe to kill: shards are finished by atomic rename and skipped when
present; `index.json`, written last, marks the cache complete. Several writers (one per
rank under `torchrun`) split the shards round-robin and the result equals a single
process's, because a shard's batches do not depend on who computes them.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch

from activations.cache.format import (
    COMPRESSIONS, DTYPES, FORMAT_VERSION, STORAGE_DTYPES, INDEX, CacheDtype, CacheError, CacheLock, Compression,
    array_hash, file_checksum, shard_path,
)
from activations.atomic import write_atomic, write_json_atomic
from activations.cache.out_dir import check_cache_out, index_matches, prepare_out
from activations.progress import progress as progress_bar
from activations.tokens import right_pad


@dataclass
class CacheWriteConfig:
    """How activations are cached."""

    hooks: list[str] = field(default_factory=lambda: ["blocks.{l}.hook_resid_post"])
    """Hook names; `{l}` expands to every layer (e.g. blocks.{l}.hook_resid_post)."""
    dtype: CacheDtype = "float16"
    """Storage dtype: float16, float32, or bfloat16 (stored as raw 16-bit patterns)."""
    compression: Compression | None = None
    """None (fastest reads), lzf or gzip (smaller files, slower reads: measure first)."""
    chunk_rows: int = 8192
    """Rows per HDF5 chunk: the unit of random reads when shuffling."""
    shard_sequences: int = 512
    """Sequences per shard: the unit of resumption and of work split between ranks."""
    batch_size: int = 64
    """Sequences per forward pass."""

    def __post_init__(self):
        # The Literal types' values: a config file is checked against them when read; this is
        # for configs built in Python.
        if self.dtype not in DTYPES:
            raise ValueError(f"cache dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"cache compression must be one of {list(COMPRESSIONS)}, got {self.compression!r}")
        if not self.hooks:
            raise ValueError("cache hooks must name at least one hook, e.g. blocks.{l}.hook_resid_post")
        for name in ("chunk_rows", "shard_sequences", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"cache {name} must be >= 1, got {getattr(self, name)}")


# ---- hooks --------------------------------------------------------------------------------
def expand_hooks(hooks: Sequence[str], n_layers: int) -> list[str]:
    out: list[str] = []
    for h in hooks:
        for name in ([h.format(l=i) for i in range(n_layers)] if "{l}" in h else [h]):
            if name not in out:
                out.append(name)
    return out


def _compact(names: Sequence[str]) -> str:
    """Hook names with layer indices folded: blocks.{l}.hook_resid_post (l = 0..2)."""
    groups: dict[str, list[int]] = {}
    for n in names:
        m = re.match(r"blocks\.(\d+)\.(.*)", n)
        key = f"blocks.{{l}}.{m.group(2)}" if m else n
        groups.setdefault(key, []).append(int(m.group(1)) if m else -1)
    parts = [k if ls == [-1] else f"{k} (l = {min(ls)}..{max(ls)})" for k, ls in groups.items()]
    return ", ".join(parts)


def check_hooks(model, hooks: Sequence[str]) -> None:
    valid = model.hook_dict
    bad = [h for h in hooks if h not in valid]
    if bad:
        resid = [n for n in valid if "resid" in n or n.startswith("hook_")]
        raise CacheError(f"the model has no hook {bad[0]!r}; residual-stream hooks: {_compact(resid)} "
                         f"(all {len(valid)} hooks: model.hook_dict)")


def stop_layer(hooks: Sequence[str], n_layers: int) -> int | None:
    """Run the model only up to the last block any hook needs (None: the whole model)."""
    layers = []
    for h in hooks:
        m = re.match(r"blocks\.(\d+)\.", h)
        if m:
            layers.append(int(m.group(1)))
        elif h not in ("hook_embed", "hook_pos_embed"):
            return None
    return max(layers, default=0) + 1


# ---- writing ------------------------------------------------------------------------------
def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier() -> None:
    if _dist()[1] > 1:
        torch.distributed.barrier()


def _cast(x: torch.Tensor, dtype: str) -> torch.Tensor:
    return x.to(getattr(torch, dtype))


def _to_numpy(x: torch.Tensor, dtype: str) -> np.ndarray:
    """A cast tensor -> the storage array (bfloat16 as its raw 16-bit patterns)."""
    if dtype == "bfloat16":
        return x.view(torch.int16).numpy().view(np.uint16)
    return x.numpy()


def _shard_ok(path: Path, rows: int, token_hash: str) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["n_rows"]) == rows and f.attrs["token_ids_hash"] == token_hash
    except (OSError, KeyError):
        return False


def _compute_shard(model, hooks, cfg: CacheWriteConfig, ids: list[np.ndarray], labels: dict[str, list[np.ndarray]],
                   seq0: int, tmp: Path, attrs: dict, stop: int | None, d_model: int) -> int:
    rows = sum(len(x) for x in ids)
    chunk = (max(1, min(cfg.chunk_rows, rows)), d_model)
    device = next(model.parameters()).device
    with h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f.attrs["n_rows"] = rows
        f.create_dataset("token_ids", data=np.concatenate(ids).astype(np.int32))
        f.create_dataset("seq", data=np.concatenate([np.full(len(x), seq0 + i, np.int32) for i, x in enumerate(ids)]))
        f.create_dataset("pos", data=np.concatenate([np.arange(len(x), dtype=np.int32) for x in ids]))
        for name, arrs in labels.items():
            f.create_dataset(f"labels/{name}", data=np.concatenate(arrs).astype(np.int32))
        dsets = {h: f.create_dataset(f"acts/{h}", shape=(rows, d_model), dtype=STORAGE_DTYPES[cfg.dtype],
                                     chunks=chunk, compression=cfg.compression) for h in hooks}
        # Buffer rows up to whole chunks, so every chunk is written once (no read-modify-write).
        pending: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
        written = 0
        n_pending = 0

        def flush(final: bool) -> None:
            nonlocal written, n_pending
            take = n_pending if final else (n_pending // chunk[0]) * chunk[0]
            if take == 0:
                return
            for h in hooks:
                block = np.concatenate(pending[h])
                dsets[h][written:written + take] = block[:take]
                pending[h] = [block[take:]]
            written += take
            n_pending -= take

        for b in range(0, len(ids), cfg.batch_size):
            batch = ids[b:b + cfg.batch_size]
            tokens, valid = right_pad(batch)  # (B, T)
            with torch.inference_mode():
                _, cache = model.run_with_cache(tokens.to(device), names_filter=list(hooks), stop_at_layer=stop)
            valid_dev = valid.to(device)
            limit = torch.finfo(getattr(torch, cfg.dtype)).max
            for h in hooks:
                x = cache[h][valid_dev]  # (valid rows, d_model), sequence-major
                # One reduction catches NaN, inf and values beyond the storage dtype's range
                # (float16 overflows at 65504); torch.isfinite over every value costs 10x more.
                peak = x.abs().amax()
                if not bool(peak <= limit):  # False for NaN too
                    bad = (~(x.abs() <= limit)).any(-1).nonzero()[0].item()
                    r, t = valid.nonzero()[bad].tolist()
                    raise CacheError(f"non-finite activations (NaN/inf, or beyond {cfg.dtype}'s range) at hook {h}, "
                                     f"sequence {seq0 + b + r}, position {t}; the model's weights or inputs are "
                                     "broken (or store float32): nothing was written for this shard")
                acts = _cast(x, cfg.dtype).cpu()
                pending[h].append(_to_numpy(acts, cfg.dtype))
            n_pending += int(valid.sum())
            flush(final=False)
        flush(final=True)
    return rows


def _checksum_path(shard: Path) -> Path:
    return shard.with_name(shard.name + ".crc32")


def _write_checksum(shard: Path) -> None:
    write_atomic(_checksum_path(shard), file_checksum(shard))


def write_cache(model, token_ids: Sequence[np.ndarray], labels: dict[str, Sequence[np.ndarray]], out: str | Path,
                cfg: CacheWriteConfig, provenance: dict, overwrite: bool = False, progress: bool = True) -> dict:
    """Cache `model`'s activations on `token_ids` (one int array per sequence, BOS included)
    into the folder `out`, with `labels` (name -> one int array per sequence, aligned with
    the tokens) stored beside them. `provenance` (model, revision, tokenizer hash, task,
    seed, ...) goes into meta.json. Resumes an interrupted cache with the same metadata;
    refuses one with different metadata unless `overwrite`. Returns the metadata.

    Under torch.distributed every rank calls this with the same arguments and writes its
    share of the shards; rank 0 writes meta.json and index.json."""
    out = Path(out)
    rank, world = _dist()
    n_layers = model.cfg.n_layers
    hooks = expand_hooks(cfg.hooks, n_layers)
    check_hooks(model, hooks)
    token_ids = [np.asarray(x) for x in token_ids]
    if not token_ids or any(len(x) == 0 for x in token_ids):
        raise CacheError("every sequence to cache needs at least one token")
    for name, arrs in labels.items():
        if len(arrs) != len(token_ids) or any(len(a) != len(x) for a, x in zip(arrs, token_ids)):
            raise CacheError(f"labels {name!r} must give one value per token of every sequence")
    n_shards = -(-len(token_ids) // cfg.shard_sequences)
    meta = {
        "format_version": FORMAT_VERSION,
        **provenance,
        "hooks": hooks,
        "d_model": int(model.cfg.d_model),
        "write_config": asdict(cfg),
        "n_sequences": len(token_ids),
        "n_rows": int(sum(len(x) for x in token_ids)),
        "n_shards": n_shards,
        "label_names": list(labels),
        "token_ids_hash": array_hash(token_ids),
        "labels_hash": array_hash([a for name in labels for a in labels[name]]),
    }
    if rank == 0:
        check_cache_out(out)
    lock = CacheLock(out) if rank == 0 else None  # one writing job per cache folder
    try:
        if rank == 0:
            prepare_out(out, meta, overwrite)
        _barrier()
        if (out / INDEX).is_file() and index_matches(out):
            return meta  # complete already
        # Every shard carries the cache's metadata too, so a lone shard file still says what made it.
        attrs = {"format_version": FORMAT_VERSION, "meta": json.dumps(meta)}
        stop = stop_layer(hooks, n_layers)
        mine = [i for i in range(n_shards) if i % world == rank]
        # Checksums run in a background thread (hashlib and file reads release the GIL), so
        # they overlap the next shard's forward passes instead of adding to them.
        hasher = ThreadPoolExecutor(max_workers=1)
        pending_checksums = []
        bar = progress_bar(mine, desc=f"cache {provenance.get('model', '')}", disable=not progress, leave=False)
        for i in bar:
            s0, s1 = i * cfg.shard_sequences, min((i + 1) * cfg.shard_sequences, len(token_ids))
            rows = sum(len(x) for x in token_ids[s0:s1])
            final = shard_path(out, i)
            shard_attrs = attrs | {"shard": i, "seq_start": s0, "seq_end": s1, "rank": rank, "world_size": world,
                                   "token_ids_hash": array_hash(token_ids[s0:s1])}
            if final.is_file() and _shard_ok(final, rows, shard_attrs["token_ids_hash"]):
                if not _checksum_path(final).is_file():  # killed between the two renames
                    _write_checksum(final)
                continue
            tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
            try:
                _compute_shard(model, hooks, cfg, token_ids[s0:s1], {k: list(v[s0:s1]) for k, v in labels.items()},
                               s0, tmp, shard_attrs, stop, meta["d_model"])
                os.replace(tmp, final)
                # each rank checksums its own shards, so rank 0 never reads them all
                pending_checksums.append(hasher.submit(_write_checksum, final))
            except OSError as e:  # e.g. a full disk
                tmp.unlink(missing_ok=True)
                raise CacheError(f"writing {final} failed: {e.strerror or e}; free space and re-run "
                                 "(finished shards are kept)") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                hasher.shutdown(wait=False, cancel_futures=True)
                raise
        for fut in pending_checksums:
            fut.result()
        hasher.shutdown()
        _barrier()
        if rank == 0:
            shards = []
            for i in range(n_shards):
                p = shard_path(out, i)
                with h5py.File(p, "r") as f:
                    rows = int(f.attrs["n_rows"])
                # The checksum lets `open_cache(verify=True)` / `saelab cache-info --verify` catch
                # flipped bytes, which uncompressed HDF5 data cannot detect by itself.
                crc = _checksum_path(p).read_text().strip() if _checksum_path(p).is_file() else file_checksum(p)
                shards.append({"file": p.name, "rows": rows, "bytes": p.stat().st_size, "crc32": crc})
            write_json_atomic(out / INDEX, {"complete": True, "n_rows": meta["n_rows"], "shards": shards,
                                            "bytes": sum(s["bytes"] for s in shards)})
        _barrier()
    finally:
        if lock is not None:
            lock.release()
    return meta
