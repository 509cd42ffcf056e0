"""Two token-aligned caches (base and fine-tuned, cached on the same token set): batches of
the same rows from both, for crosscoders and paired comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from activations.cache.format import CacheError
from activations.cache.reader import ActivationCache, open_cache
from activations.cache.streams import Where, stream_batches, stream_shuffled


class PairedCache:
    """Two token-aligned caches (e.g. base and fine-tuned): batches of the same rows from both."""

    def __init__(self, a: ActivationCache, b: ActivationCache):
        self.a, self.b = a, b

    def batches(self, hook: str, batch_size: int, where: Where = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return stream_batches([self.a, self.b], hook, batch_size, where)

    def shuffled(self, hook: str, batch_size: int, buffer_rows: int = 262_144, seed: int = 0, where: Where = None,
                 epochs: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return stream_shuffled([self.a, self.b], hook, batch_size, buffer_rows, seed, where, epochs)

    def close(self) -> None:
        self.a.close()
        self.b.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_paired(base: str | Path, finetuned: str | Path) -> PairedCache:
    """Open two caches of the same tokens; refuses caches whose token ids, labels, hooks or
    layout differ, saying which."""
    a = open_cache(base)
    try:
        b = open_cache(finetuned)
    except BaseException:
        a.close()
        raise
    checks = [("tokenizers", "tokenizer_hash"), ("token ids", "token_ids_hash"), ("labels", "labels_hash"),
              ("label names", "label_names"), ("hooks", "hooks"), ("d_model", "d_model"), ("shard layout", "n_shards")]
    for what, key in checks:
        if a.meta.get(key) != b.meta.get(key):
            a.close(), b.close()
            raise CacheError(f"caches {a.path} and {b.path} are not a pair: their {what} differ "
                             f"({a.meta.get(key)} vs {b.meta.get(key)}); cache both models on the same token set")
    if a.shard_rows != b.shard_rows or a.chunk_rows != b.chunk_rows:
        a.close(), b.close()
        raise CacheError(f"caches {a.path} and {b.path} are not a pair: their chunking differs; "
                         "write both with the same cache settings")
    return PairedCache(a, b)
