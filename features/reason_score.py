"""ReasonScore (Galichin et al. 2025, "I Have Covered All the Bases Here: Interpreting
Reasoning Features in Large Language Models via Sparse Autoencoders").

With mu_i^R and mu_i^notR the mean activation of latent i on reasoning positions and on
all others, mu_{i,k} its mean on group k of the reasoning positions,
p_{i,k} = mu_{i,k} / sum_k mu_{i,k} and H_i = -sum_k p_{i,k} log p_{i,k} / log |groups|:

    ReasonScore_i = (mu_i^R / sum_j mu_j^R) * H_i^alpha  -  mu_i^notR / sum_j mu_j^notR

A latent scores high when it is active on reasoning positions, spread over the groups
(not one word's or one operator's detector), and quiet elsewhere.

Reasoning positions: anchor rows (a filter on the cache's labels, e.g. CoT-step tokens)
widened by a window within their sequence (the paper: 1 token left, 2 right); each takes
its anchor's group (e.g. the step's operator). Groups are a label column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class ReasonScoreConfig:
    """Which positions count as reasoning, and how they are grouped."""

    anchor: dict[str, int | list[int]] = field(default_factory=lambda: {"role": 1})
    """Cache label filter for the anchor positions (default: CoT-step tokens, role 1)."""
    group_by: str = "op"
    """Label column whose values are the groups (default: the step's operator)."""
    window_left: int = 1
    """Positions before each anchor that also count as reasoning."""
    window_right: int = 2
    """Positions after each anchor that also count as reasoning."""
    alpha: float = 0.7
    """Exponent of the entropy term."""

    def __post_init__(self):
        if self.window_left < 0 or self.window_right < 0:
            raise ValueError("reason score windows must be >= 0")
        if not self.anchor:
            raise ValueError("reason score anchor must name at least one label, e.g. {role: 1}")


def reasoning_positions(cols: dict[str, np.ndarray], cfg: ReasonScoreConfig) -> tuple[np.ndarray, np.ndarray]:
    """(is_reasoning (N,) bool, group (N,) int, -1 outside) from a cache's columns (rows in
    sequence order, as the cache stores them). A position inside two windows takes the group
    of the nearer anchor; on a tie, of the anchor after it (offset -1 is tried before +1, and
    an equally near anchor found later does not replace it)."""
    n = len(cols["seq"])
    anchor = np.ones(n, bool)
    for name, want in cfg.anchor.items():
        if name not in cols:
            raise ValueError(f"reason score anchor: no label {name!r}; the cache has {sorted(cols)}")
        anchor &= np.isin(cols[name], np.atleast_1d(want))
    if cfg.group_by not in cols:
        raise ValueError(f"reason score group_by: no label {cfg.group_by!r}; the cache has {sorted(cols)}")
    group = np.full(n, -1, np.int64)
    dist = np.full(n, np.iinfo(np.int64).max)
    seq = cols["seq"]
    idx = np.flatnonzero(anchor)
    for off in sorted(range(-cfg.window_left, cfg.window_right + 1), key=lambda o: (abs(o), o)):
        tgt = idx + off
        ok = (tgt >= 0) & (tgt < n)
        src, tgt = idx[ok], tgt[ok]
        same = seq[tgt] == seq[src]  # windows never cross into another sequence
        src, tgt = src[same], tgt[same]
        closer = abs(off) < dist[tgt]
        group[tgt[closer]] = cols[cfg.group_by][src[closer]]
        dist[tgt[closer]] = abs(off)
    is_r = dist <= max(cfg.window_left, cfg.window_right)
    if (group[is_r] < 0).any():
        raise ValueError(f"reason score: some anchors have no {cfg.group_by!r} value (-1); narrow the anchor")
    return is_r, group


def score_from_means(mu_groups: torch.Tensor, mu_not: torch.Tensor, mu_r: torch.Tensor, alpha: float) -> torch.Tensor:
    """ReasonScore (d_sae,) from mu_{i,k} (K, d_sae), mu^notR (d_sae,) and mu^R (d_sae,)."""
    k = mu_groups.shape[0]
    total = mu_groups.sum(0)
    p = mu_groups / total.clamp_min(1e-12)
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum(0) / np.log(k) if k > 1 else torch.ones_like(total)
    ent = torch.where(total > 0, ent, torch.zeros_like(ent))  # never active on reasoning: no spread
    return mu_r / mu_r.sum().clamp_min(1e-12) * ent.clamp_min(0) ** alpha - mu_not / mu_not.sum().clamp_min(1e-12)


@torch.no_grad()
def reason_scores(sae, cache_path: str | Path, hook: str, cfg: ReasonScoreConfig, batch_size: int = 4096) -> dict:
    """ReasonScore of every latent of `sae` on a cache, with the means it is made of.
    Streams the cache once in row order."""
    from activations.cache import open_cache
    from sae.load import check_fits

    with open_cache(cache_path) as cache:
        check_fits(sae, cache.d_model, hook)
        cols = {name: cache.column(name) for name in ["seq", *cache.meta["label_names"]]}
        codes = (sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype)) for x in cache.batches(hook, batch_size))
        return scores_of_codes(codes, cols, sae.cfg.d_sae, cfg)


def crosscoder_reason_scores(cc, base_cache: str | Path, finetuned_cache: str | Path, hook: str,
                             cfg: ReasonScoreConfig, batch_size: int = 4096) -> dict:
    """ReasonScore of every crosscoder latent on two token-aligned caches (positions and groups
    from the first; the code reads both models' activations at once)."""
    from activations.cache import open_paired

    with open_paired(base_cache, finetuned_cache) as pair:
        pair.a.check_hook(hook)
        cols = {name: pair.a.column(name) for name in ["seq", *pair.a.meta["label_names"]]}
        dev = cc.W_enc.device
        codes = (cc.encode(torch.stack([a, b], 1).to(dev, cc.W_enc.dtype)) for a, b in pair.batches(hook, batch_size))
        return scores_of_codes(codes, cols, cc.W_enc.shape[-1], cfg)


@torch.no_grad()
def scores_of_codes(codes, cols: dict[str, np.ndarray], d_sae: int, cfg: ReasonScoreConfig) -> dict:
    """ReasonScore from latent codes (B, d_sae) of every cached row in order, and the rows'
    label columns `cols` (seq and the task's labels)."""
    is_r, group = reasoning_positions(cols, cfg)
    groups = np.unique(group[is_r])
    gidx = np.searchsorted(groups, group)
    sum_g = torch.zeros(len(groups), d_sae, dtype=torch.float64)
    sum_not = torch.zeros(d_sae, dtype=torch.float64)
    start = 0
    for f in codes:
        f = f.double().cpu()
        r = torch.from_numpy(is_r[start:start + len(f)])
        g = torch.from_numpy(gidx[start:start + len(f)])[r]
        sum_g.index_add_(0, g, f[r])
        sum_not += f[~r].sum(0)
        start += len(f)
    if start != len(is_r):
        raise ValueError(f"reason score: {start} coded rows for {len(is_r)} labelled rows")
    n_g = torch.from_numpy(np.array([(group[is_r] == v).sum() for v in groups], dtype=np.float64))
    n_r, n_not = float(is_r.sum()), float((~is_r).sum())
    if n_r == 0 or n_not == 0:
        raise ValueError(f"reason score: {int(n_r)} reasoning and {int(n_not)} other positions; both must be > 0")
    mu_groups = sum_g / n_g[:, None]
    mu_r = sum_g.sum(0) / n_r
    mu_not = sum_not / n_not
    score = score_from_means(mu_groups, mu_not, mu_r, cfg.alpha)
    return {"score": score, "mu_reasoning": mu_r, "mu_other": mu_not, "mu_groups": mu_groups,
            "groups": groups.tolist(), "n_reasoning": int(n_r), "n_other": int(n_not)}
