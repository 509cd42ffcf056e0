"""ReasonScore (Galichin et al. 2025, "I Have Covered All the Bases Here: Interpreting
Reasoning Features in Large Language Models via Sparse Autoencoders").

With mu_i^R and mu_i^notR the mean activation of latent i on reasoning positions and on
all others, mu_{i,k} its mean on the positions of group k, p_{i,k} = mu_{i,k} / sum_k mu_{i,k}
and H_i = -sum_k p_{i,k} log p_{i,k} / log K:

    ReasonScore_i = (mu_i^R / sum_j mu_j^R) * H_i^alpha  -  mu_i^notR / sum_j mu_j^notR

A latent scores high when it is active on reasoning positions, spread over the groups
(not one word's or one operator's detector), and quiet elsewhere.

Reasoning positions: anchor rows (a filter on the cache's labels, e.g. CoT-step tokens)
widened by a window within their sequence (the paper: 1 token left, 2 right); each window
belongs to its anchor's group (e.g. the step's operator). Groups are a label column.

As in the reference code (AIRI-Institute/SAE-Reasoning `extraction/compute_score.py`):
- a position inside the windows of several groups counts in every one of them, once in
  mu^R (`_compute_single_mask` widens each group's mask separately, L91-104; the groups'
  masks are OR-ed, L152-166);
- the tokenizer's BOS, EOS and padding tokens, and any configured ids, are left out of both
  position sets after the windows are widened (`ignore_tokens`, L146-175;
  `extraction/scripts/compute_score.sh` L10 passes Llama's BOS and EOS ids): a BOS that
  every latent of some kind fires on would otherwise dominate sum_j mu_j^notR;
- K is the configured number of groups (the anchor vocabulary's size), a group never seen
  contributing zero mass (`len(tokens_of_interest)` means, zero-initialised, L134-137 and
  L336-337), not the number of groups that occur;
- the score itself is L331-348, epsilon 1e-12 in its denominators.
Not done here: the reference folds the decoder norms into the encoder first
(`encoder.fold_W_dec_norm()`, L312), and its word groups are case-sensitive lists.

On the arithmetic task the default anchor is every CoT-step token, so there the score
contrasts "inside the CoT" with "outside it" (the question, the answer), not reasoning
words with other words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, Sequence

import numpy as np
import torch

EPS = 1e-12  # the reference's epsilon (compute_score.py L310)

# Where a cache's metadata records the vocabulary of a group label: the arithmetic task's
# operators (the `op` label indexes them) and the pair study's reasoning words (`word`).
GROUP_VOCABULARIES = {"op": ("task", "operators"), "word": ("words",)}


@dataclass
class ReasonScoreConfig:
    """Which positions count as reasoning, how they are grouped, and which are left out."""

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
    n_groups: int | None = None
    """K, the number of groups (the anchor vocabulary's size) the entropy is normalised by;
    None: from the cache's metadata (the task's operators for `op`, the cached reasoning words
    for `word`)."""
    ignore_special: bool = True
    """Leave the tokenizer's BOS, EOS and padding tokens out of both position sets (Galichin
    et al.'s `--ignore_tokens <bos>,<eos>`)."""
    ignore_token_ids: list[int] = field(default_factory=list)
    """Further token ids left out of both position sets."""
    overlap: Literal["every", "nearest"] = "every"
    """A position inside windows of several groups counts in every one of them (the
    reference), or only in the nearest anchor's (saelab before; on a tie the anchor after it)."""

    def __post_init__(self):
        if self.window_left < 0 or self.window_right < 0:
            raise ValueError("reason score windows must be >= 0")
        if not self.anchor:
            raise ValueError("reason score anchor must name at least one label, e.g. {role: 1}")
        if self.n_groups is not None and self.n_groups < 1:
            raise ValueError("reason score n_groups must be >= 1 (or null: from the cache's metadata)")


class Positions(NamedTuple):
    """Where ReasonScore reads the N rows of a cache (in row order)."""

    reasoning: np.ndarray
    """(N,) bool: inside some anchor's window and not ignored."""
    other: np.ndarray
    """(N,) bool: neither reasoning nor ignored."""
    rows: np.ndarray
    """(M,) int64: the row of each (row, group) membership, sorted; a row is listed once per group."""
    groups: np.ndarray
    """(M,) int64: the group of that membership."""


def _anchors(cols: dict[str, np.ndarray], cfg: ReasonScoreConfig) -> np.ndarray:
    n = len(cols["seq"])
    anchor = np.ones(n, bool)
    for name, want in cfg.anchor.items():
        if name not in cols:
            raise ValueError(f"reason score anchor: no label {name!r}; the cache has {sorted(cols)}")
        anchor &= np.isin(cols[name], np.atleast_1d(want))
    if cfg.group_by not in cols:
        raise ValueError(f"reason score group_by: no label {cfg.group_by!r}; the cache has {sorted(cols)}")
    idx = np.flatnonzero(anchor)
    if (cols[cfg.group_by][idx] < 0).any():
        raise ValueError(f"reason score: some anchors have no {cfg.group_by!r} value (-1); narrow the anchor")
    return idx


def _window(idx: np.ndarray, off: int, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(anchor, target) row pairs at offset `off`; windows never cross into another sequence."""
    tgt = idx + off
    ok = (tgt >= 0) & (tgt < len(seq))
    src, tgt = idx[ok], tgt[ok]
    same = seq[tgt] == seq[src]
    return src[same], tgt[same]


def reasoning_positions(cols: dict[str, np.ndarray], cfg: ReasonScoreConfig,
                        ignore_ids: Sequence[int] = ()) -> Positions:
    """The reasoning rows, the other rows and each reasoning row's groups, from a cache's
    columns `cols` (seq, the labels, and token_ids when ids are ignored; rows in sequence
    order, as the cache stores them). Rows whose token is in `ignore_ids` or
    `cfg.ignore_token_ids` are in neither set; windows are widened before they are left out."""
    idx = _anchors(cols, cfg)
    seq, gval = cols["seq"], cols[cfg.group_by]
    offsets = range(-cfg.window_left, cfg.window_right + 1)
    if cfg.overlap == "every":
        pairs = [_window(idx, off, seq) for off in offsets]
        rows = np.concatenate([t for _, t in pairs]).astype(np.int64)
        groups = np.concatenate([gval[s] for s, _ in pairs]).astype(np.int64)
    else:  # the nearest anchor's group; offset -1 is tried before +1, an equally near later one does not replace it
        group = np.full(len(seq), -1, np.int64)
        dist = np.full(len(seq), np.iinfo(np.int64).max)
        for off in sorted(offsets, key=lambda o: (abs(o), o)):
            src, tgt = _window(idx, off, seq)
            closer = abs(off) < dist[tgt]
            group[tgt[closer]] = gval[src[closer]]
            dist[tgt[closer]] = abs(off)
        rows = np.flatnonzero(group >= 0)
        groups = group[rows]
    ignore = sorted({int(i) for i in [*ignore_ids, *cfg.ignore_token_ids]})
    if ignore:
        if "token_ids" not in cols:
            raise ValueError("reason score: ignoring token ids needs the cache's token_ids column")
        ignored = np.isin(cols["token_ids"], ignore)
    else:
        ignored = np.zeros(len(seq), bool)
    keep = ~ignored[rows]
    pairs = np.unique(np.stack([rows[keep], groups[keep]], 1).reshape(-1, 2), axis=0)  # sorted by row, then group
    reasoning = np.zeros(len(seq), bool)
    reasoning[pairs[:, 0]] = True
    return Positions(reasoning, ~reasoning & ~ignored, pairs[:, 0], pairs[:, 1])


def score_from_means(mu_groups: torch.Tensor, mu_not: torch.Tensor, mu_r: torch.Tensor, alpha: float) -> torch.Tensor:
    """ReasonScore (d_sae,) from mu_{i,k} (K, d_sae), mu^notR (d_sae,) and mu^R (d_sae,); K is
    every group, those never seen with zero rows (compute_score.py L331-348)."""
    k = mu_groups.shape[0]
    p = mu_groups / (mu_groups.sum(0) + EPS)
    h = -(p * torch.where(p > 0, torch.log(p), torch.zeros_like(p))).sum(0)
    h = h / math.log(k) if k > 1 else torch.ones_like(h)
    return mu_r / (mu_r.sum() + EPS) * h.clamp_min(0) ** alpha - mu_not / (mu_not.sum() + EPS)


def special_token_ids(tokenizer) -> list[int]:
    """The BOS, EOS and padding ids a tokenizer defines."""
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return sorted({int(i) for i in ids if i is not None})


def cache_special_ids(meta: dict) -> list[int]:
    """BOS, EOS and padding ids of the tokenizer of the model a cache was written from
    (its metadata's `model`: a local folder or a hub id already downloaded)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(meta["model"], local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"reason score: cannot load the tokenizer of {meta.get('model')!r} to leave out its "
                         f"BOS/EOS/padding tokens ({why}); pass special_ids, or set reason_score.ignore_special: "
                         "false and list the ids in reason_score.ignore_token_ids") from None
    return special_token_ids(tok)


def group_vocabulary_size(meta: dict, group_by: str) -> int:
    """K for label `group_by` from a cache's metadata (see GROUP_VOCABULARIES)."""
    value = meta if group_by in GROUP_VOCABULARIES else None
    for key in GROUP_VOCABULARIES.get(group_by, ()):
        value = value.get(key) if isinstance(value, dict) else None
    if not value:
        raise ValueError(f"reason score: the cache's metadata does not say how many {group_by!r} groups there are; "
                         "set reason_score.n_groups")
    return len(value)


def _resolve(meta: dict, cfg: ReasonScoreConfig, special_ids: Sequence[int] | None) -> tuple[list[int], int]:
    if special_ids is None:
        special_ids = cache_special_ids(meta) if cfg.ignore_special else []
    return list(special_ids), cfg.n_groups or group_vocabulary_size(meta, cfg.group_by)


@torch.no_grad()
def reason_scores(sae, cache_path: str | Path, hook: str, cfg: ReasonScoreConfig, batch_size: int = 4096,
                  special_ids: Sequence[int] | None = None) -> dict:
    """ReasonScore of every latent of `sae` on a cache, with the means it is made of.
    `special_ids`: the ids left out besides `cfg.ignore_token_ids` (None: the cache's
    tokenizer's BOS, EOS and padding where `cfg.ignore_special`). Streams the cache once in row order."""
    from activations.cache import open_cache
    from sae.load import check_fits

    with open_cache(cache_path) as cache:
        check_fits(sae, cache.d_model, hook)
        ignore, k = _resolve(cache.meta, cfg, special_ids)
        cols = {name: cache.column(name) for name in ["seq", "token_ids", *cache.meta["label_names"]]}
        codes = (sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype)) for x in cache.batches(hook, batch_size))
        return scores_of_codes(codes, cols, sae.cfg.d_sae, cfg, ignore_ids=ignore, n_groups=k)


def crosscoder_reason_scores(cc, base_cache: str | Path, finetuned_cache: str | Path, hook: str,
                             cfg: ReasonScoreConfig, batch_size: int = 4096,
                             special_ids: Sequence[int] | None = None) -> dict:
    """ReasonScore of every crosscoder latent on two token-aligned caches (positions, groups
    and special tokens from the first; the code reads both models' activations at once)."""
    from activations.cache import open_paired

    with open_paired(base_cache, finetuned_cache) as pair:
        pair.a.check_hook(hook)
        ignore, k = _resolve(pair.a.meta, cfg, special_ids)
        cols = {name: pair.a.column(name) for name in ["seq", "token_ids", *pair.a.meta["label_names"]]}
        dev = cc.W_enc.device
        codes = (cc.encode(torch.stack([a, b], 1).to(dev, cc.W_enc.dtype)) for a, b in pair.batches(hook, batch_size))
        return scores_of_codes(codes, cols, cc.W_enc.shape[-1], cfg, ignore_ids=ignore, n_groups=k)


@torch.no_grad()
def scores_of_codes(codes, cols: dict[str, np.ndarray], d_sae: int, cfg: ReasonScoreConfig,
                    ignore_ids: Sequence[int] = (), n_groups: int | None = None) -> dict:
    """ReasonScore from latent codes (B, d_sae) of every cached row in order, and the rows'
    columns `cols` (seq, token_ids and the task's labels). `ignore_ids` are left out besides
    `cfg.ignore_token_ids`; `n_groups` is K where `cfg.n_groups` is None.

    Returns score, mu_reasoning, mu_other (d_sae,), mu_groups (K, d_sae; row k = group value
    k, zero where it never occurs), groups (the values that occur), n_groups (K),
    n_reasoning, n_other, n_ignored (rows in neither set) and ignored_token_ids."""
    k = cfg.n_groups or n_groups
    if k is None:
        raise ValueError("reason score: the number of groups K is unknown; set reason_score.n_groups")
    ignore = sorted({int(i) for i in [*ignore_ids, *cfg.ignore_token_ids]})
    pos = reasoning_positions(cols, cfg, ignore)
    if len(pos.groups) and pos.groups.max() >= k:
        raise ValueError(f"reason score: {cfg.group_by!r} value {int(pos.groups.max())} but K = {k} groups; "
                         "set reason_score.n_groups to the vocabulary's size")
    sum_g = torch.zeros(k, d_sae, dtype=torch.float64)
    sum_r = torch.zeros(d_sae, dtype=torch.float64)
    sum_not = torch.zeros(d_sae, dtype=torch.float64)
    rows, groups = torch.from_numpy(pos.rows), torch.from_numpy(pos.groups)
    start = 0
    for f in codes:
        f = f.double().cpu()
        stop = start + len(f)
        a, b = np.searchsorted(pos.rows, [start, stop])
        sum_g.index_add_(0, groups[a:b], f[rows[a:b] - start])
        sum_r += f[torch.from_numpy(pos.reasoning[start:stop])].sum(0)
        sum_not += f[torch.from_numpy(pos.other[start:stop])].sum(0)
        start = stop
    if start != len(pos.reasoning):
        raise ValueError(f"reason score: {start} coded rows for {len(pos.reasoning)} labelled rows")
    n_r, n_not = int(pos.reasoning.sum()), int(pos.other.sum())
    if n_r == 0 or n_not == 0:
        raise ValueError(f"reason score: {n_r} reasoning and {n_not} other positions; both must be > 0")
    n_g = torch.from_numpy(np.bincount(pos.groups, minlength=k).astype(np.float64))
    mu_groups = sum_g / n_g.clamp_min(1)[:, None]
    mu_r, mu_not = sum_r / n_r, sum_not / n_not
    return {"score": score_from_means(mu_groups, mu_not, mu_r, cfg.alpha), "mu_reasoning": mu_r, "mu_other": mu_not,
            "mu_groups": mu_groups, "groups": np.flatnonzero(n_g.numpy() > 0).tolist(), "n_groups": k,
            "n_reasoning": n_r, "n_other": n_not, "n_ignored": len(pos.reasoning) - n_r - n_not,
            "ignored_token_ids": ignore}
