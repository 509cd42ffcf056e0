"""The batch iterators over one cache or several token-aligned ones (read in lockstep):
sequential batches, and shuffled batches with bounded memory. Each yields a tuple of float32
tensors `(B, d_model)`, one per cache.

Shuffling reads whole chunk-aligned blocks in random order into a buffer and shuffles rows
inside it: random single-row reads from HDF5 are two orders of magnitude slower.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from activations.cache.format import STORAGE_DTYPES, CacheError

Where = Mapping[str, int | Sequence[int]] | Callable[[dict[str, np.ndarray]], np.ndarray] | None
"""A row filter: {label: value or values} (all must match), or fn(columns) -> bool mask."""


def check_stream(caches, hook: str, batch_size: int, where: Where = None) -> None:
    for c in caches:
        c.check_hook(hook)
    caches[0].check_where(where)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def stream_batches(caches: list, hook: str, batch_size: int, where: Where):
    check_stream(caches, hook, batch_size, where)
    carry = [np.zeros((0, c.d_model), STORAGE_DTYPES[c.dtype]) for c in caches]  # rows short of a batch
    for block in caches[0].blocks():
        keep = caches[0].mask(block, where)
        # One concatenation per block, then batches are slices: linear in the rows read.
        rows = [np.concatenate([r, c.read_block(hook, block, keep)]) for r, c in zip(carry, caches)]
        full = len(rows[0]) // batch_size * batch_size
        for s in range(0, full, batch_size):
            yield tuple(c.to_float(r[s:s + batch_size]) for c, r in zip(caches, rows))
        carry = [r[full:] for r in rows]
    if len(carry[0]):
        yield tuple(c.to_float(r) for c, r in zip(caches, carry))


def stream_shuffled(caches: list, hook: str, batch_size: int, buffer_rows: int, seed: int,
              where: Where, epochs: int | None):
    check_stream(caches, hook, batch_size, where)
    if buffer_rows < batch_size:
        raise ValueError(f"buffer_rows ({buffer_rows}) must be >= batch_size ({batch_size})")
    rng = np.random.default_rng(seed)
    blocks = caches[0].blocks()
    # One preallocated buffer per cache (storage dtype): memory stays buffer_rows + one chunk.
    cap = buffer_rows + caches[0].chunk_rows
    buf = [np.empty((cap, c.d_model), STORAGE_DTYPES[c.dtype]) for c in caches]
    fill = 0

    def emit(n_rows: int, final: bool):
        nonlocal fill
        perm = rng.permutation(n_rows)
        n_out = n_rows if final else (n_rows // batch_size) * batch_size
        for s in range(0, n_out, batch_size):
            idx = perm[s:s + batch_size]
            yield tuple(c.to_float(b[idx]) for c, b in zip(caches, buf))
        rest = perm[n_out:]
        for b in buf:  # keep the tail that does not fill a batch for the next round
            b[:len(rest)] = b[rest]
        fill = len(rest)

    epoch, total = 0, 0
    while epochs is None or epoch < epochs:
        for bi in rng.permutation(len(blocks)):
            block = blocks[bi]
            keep = caches[0].mask(block, where)
            for c, b in zip(caches, buf):
                n_new = c.read_block_into(hook, block, keep, b[fill:])
            fill += n_new
            total += n_new
            if fill >= buffer_rows:
                yield from emit(fill, final=False)
        epoch += 1
        if total == 0:
            raise CacheError("no rows pass the filter; check the label values (saelab cache-info shows counts)")
    if fill:
        yield from emit(fill, final=True)
