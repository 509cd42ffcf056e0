"""Batching token sequences of different lengths for a forward pass."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def right_pad(seqs: Sequence[np.ndarray], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, valid): (B, T) int64 ids padded on the right with `pad_id`, and (B, T) bool
    marking real tokens. Under causal attention a right pad never reaches a real token, so
    no attention mask is needed and position ids stay 0..len-1."""
    lengths = np.array([len(x) for x in seqs])
    padded = np.full((len(seqs), int(lengths.max())), pad_id, dtype=np.int64)
    for r, x in enumerate(seqs):
        padded[r, :len(x)] = x
    return torch.from_numpy(padded), torch.from_numpy(np.arange(padded.shape[1]) < lengths[:, None])
