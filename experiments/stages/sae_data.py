"""Which cache rows the SAEs train and are evaluated on, and the held-out sequences the
spliced loss runs. One split for both studies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RowSplit:
    """A cache row filter: rows of examples with `example % every == 0` (held out) or the
    others (train); with `skip_first`, position 0 of every sequence is left out of both.
    A dataclass, so its repr is stable (it keys SAE checkpoints)."""

    every: int
    heldout: bool
    skip_first: bool = False

    def __call__(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        keep = (cols["example"] % self.every == 0) == self.heldout
        return keep & (cols["pos"] > 0) if self.skip_first else keep

    @classmethod
    def of(cls, sae_cfg, heldout: bool) -> "RowSplit":
        """The split an `sae` config section asks for."""
        return cls(sae_cfg.heldout_every, heldout, sae_cfg.skip_first_token)


def cache_sequences(cache_path: Path, limit: int, where=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token ids and CoT-step masks of the first `limit` sequences of a cache (those with a
    row passing `where`, a function of the label columns)."""
    from activations.cache import open_cache
    from experiments.tasks import ROLES

    with open_cache(cache_path) as c:
        cols = {n: c.column(n) for n in ("seq", "pos", "token_ids", "role", *c.meta["label_names"])}
    seq = cols["seq"]
    keep = np.ones(len(seq), bool) if where is None else where(cols)
    wanted = np.unique(seq[keep])[:limit]
    step = ROLES.index("step")
    out_ids, out_step = [], []
    for s in wanted:
        rows = seq == s
        out_ids.append(cols["token_ids"][rows].astype(np.int64))
        out_step.append(cols["role"][rows] == step)
    return out_ids, out_step
