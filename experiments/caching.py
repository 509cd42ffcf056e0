"""`saelab cache` and `saelab cache-info`: cache one model's activations on the run's token
set, and describe a cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from experiments.cache_set import CacheConfig, token_set
from experiments.config import to_dict
from experiments.tasks import ROLES, ArithmeticTask


def cache_model(model: str, out: str | Path, task: ArithmeticTask, cfg: CacheConfig, seed: int,
                device: str = "cpu", overwrite: bool = False, name: str | None = None) -> dict:
    """Cache `model` (folder or HF id) on the token set of `cfg.tokens`; returns the metadata.
    Every rank of a torch.distributed job calls this with the same arguments."""
    from transformers import AutoTokenizer

    from activations.cache import write_cache
    from activations.cache.out_dir import check_cache_out
    from activations.models import load_bridge, provenance, tokenizer_hash
    from experiments.behavior.model_eval import check_model_path, check_task

    if int(os.environ.get("RANK", "0")) == 0:  # before loading anything; rank 0 owns the folder
        check_cache_out(out)
    check_model_path(model)
    check_task(model, task)
    try:
        tok = AutoTokenizer.from_pretrained(model)
    except OSError as e:
        raise FileNotFoundError(f"cannot load the tokenizer of {model!r}: {str(e).splitlines()[0]}") from None
    ids, labels = token_set(task, tok, cfg.tokens, seed)
    try:
        bridge = load_bridge(model, device)
    except OSError as e:
        raise FileNotFoundError(f"cannot load model {model!r}: {str(e).splitlines()[0]}") from None
    prov = provenance(model, bridge) | {"name": name or Path(model).name, "tokenizer_hash": tokenizer_hash(tok),
                                         "task": to_dict(task.cfg), "seed": seed, "tokens": to_dict(cfg.tokens)}
    return write_cache(bridge, ids, labels, out, cfg.write, prov, overwrite=overwrite)


def describe(path: str | Path, verify: bool = False) -> str:
    """A human-readable summary of a cache: provenance, shapes, completeness, label counts
    (`verify`: check every shard's checksum first)."""
    from activations.cache import open_cache

    with open_cache(path, allow_incomplete=True, verify=verify) as cache:
        return _describe(cache, Path(path), verify)


def _describe(cache, path: Path, verify: bool) -> str:
    from activations.cache.format import INDEX, SHARDS, read_json

    m = cache.meta
    done = len(cache.shard_rows)
    size = sum(p.stat().st_size for p in (Path(path) / SHARDS).glob("shard-*.h5"))
    lines = [
        f"cache      {path}",
        f"status     {'complete' if cache.complete else 'INCOMPLETE'} ({done} of {m['n_shards']} shards, "
        f"{cache.n_rows} of {m['n_rows']} rows)",
        f"model      {m.get('model')} (revision {m.get('model_revision')}, weights {m.get('weights_hash')}), "
        f"tokenizer {m.get('tokenizer_hash')}",
        f"hooks      {', '.join(cache.hooks)}",
        f"shape      {cache.n_rows} rows x {cache.d_model} per hook, {m['n_sequences']} sequences",
        f"storage    {m['write_config']['dtype']}, compression {m['write_config']['compression']}, "
        f"chunks of {m['write_config']['chunk_rows']} rows, {size / 2**20:.1f} MiB",
        f"token set  token ids {m['token_ids_hash']}, labels {m['labels_hash']}; task {m.get('task')}, "
        f"seed {m.get('seed')}",
    ]
    if cache.complete:
        lines.append(f"index      {read_json(Path(path) / INDEX)['bytes']} bytes in shards"
                     + (", every checksum verified" if verify else " (--verify checks their checksums)"))
    for name in m["label_names"]:
        if cache.n_rows == 0:
            break
        values, counts = np.unique(cache.column(name), return_counts=True)
        if len(values) > 12:
            lines.append(f"label      {name}: {len(values)} distinct values in [{values.min()}, {values.max()}]")
            continue
        names = ROLES if name == "role" else None
        shown = ", ".join(f"{names[v] if names and 0 <= v < len(names) else v}: {c}" for v, c in zip(values, counts))
        lines.append(f"label      {name}: {shown}")
    return "\n".join(lines)
