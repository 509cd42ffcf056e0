"""Latent activations at chosen positions of a model's forward passes, and what a
fine-tune changed in them.

`position_activations` runs the model on right-padded sequences, reads the hook at the masked
positions and encodes it with an SAE: (n_positions, d_sae). Reading the base and the
fine-tuned model through the same SAE (the base's) puts both in one latent basis; the
latents whose mean activation grew most are the candidates for "what fine-tuning added",
those that shrank for "what it suppressed".
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from activations.tokens import right_pad


@torch.no_grad()
def position_activations(model, token_ids: Sequence[np.ndarray], masks: Sequence[np.ndarray], hook: str,
                         batch_size: int = 128) -> torch.Tensor:
    """(n, d_model) the model's activation at `hook` at every masked position, in sequence order."""
    out = []
    dev = next(model.parameters()).device
    for b in range(0, len(token_ids), batch_size):
        tokens, valid = right_pad(token_ids[b:b + batch_size])
        _, cache = model.run_with_cache(tokens.to(dev), names_filter=[hook])
        m = torch.zeros(tokens.shape, dtype=torch.bool)
        for r, mk in enumerate(masks[b:b + batch_size]):
            m[r, :len(mk)] = torch.as_tensor(np.asarray(mk, bool))
        out.append(cache[hook][(m & valid.bool()).to(dev)].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def latent_shift(sae, base_acts: torch.Tensor, ft_acts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per latent, over the same positions of the same tokens read by one SAE: mean
    activation in each model, firing frequency in each, and the shift (fine-tuned - base)."""
    fb = sae.encode(base_acts.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
    ff = sae.encode(ft_acts.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
    return {"mean_base": fb.mean(0), "mean_finetuned": ff.mean(0), "freq_base": (fb > 0).float().mean(0),
            "freq_finetuned": (ff > 0).float().mean(0), "shift": ff.mean(0) - fb.mean(0)}


def matched_random_latents(freq: torch.Tensor, chosen: Sequence[int], seed: int, pool: int = 1) -> list[int]:
    """A control for `chosen`: as many other latents, each drawn (deterministic in the seed)
    from the `pool` unused latents whose firing frequency is nearest the one it replaces
    (ties with the farthest of them included). Nearest rather than same-decile: most latents
    are silent at a single position, so decile edges collapse to 0 and a decile would pair a
    busy latent with a silent one. With pool = 1 (the nearest only) a latent of unique
    frequency has one match, so repeated draws repeat: a null distribution needs pool > 1."""
    g = np.random.default_rng(seed)
    f = freq.double().numpy()
    taken = set(int(c) for c in chosen)
    out = []
    for c in chosen:
        free = np.array([j for j in range(len(f)) if j not in taken])
        if not len(free):
            raise ValueError(f"no latent left to match {len(chosen)} chosen latents out of {len(f)}")
        gap = np.abs(f[free] - f[int(c)])
        cut = np.partition(gap, min(pool, len(gap)) - 1)[min(pool, len(gap)) - 1]
        nearest = free[gap <= cut + 1e-12]
        j = int(g.choice(nearest))
        taken.add(j)
        out.append(j)
    return out


def random_direction_like(v: torch.Tensor, seed: int) -> torch.Tensor:
    """A random direction with the norm of `v` (deterministic in the seed)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(v.shape, generator=g)
    return r / r.norm() * v.norm()


def decoder_matching(sae_a, sae_b) -> dict[str, torch.Tensor]:
    """For paired SAEs: each latent of `sae_a` matched to the latent of `sae_b` with the most
    similar decoder direction (cosine), and that cosine."""
    a = torch.nn.functional.normalize(sae_a.W_dec.detach().float(), dim=-1)
    b = torch.nn.functional.normalize(sae_b.W_dec.detach().float(), dim=-1)
    cos = a @ b.T
    best, idx = cos.max(1)
    return {"match": idx, "cosine": best, "same_index_cosine": cos.diagonal()}


def group_means(sae, cache_path: str | Path, hook: str, group: str = "role", batch_size: int = 4096) -> dict:
    """Density and mean activation of every latent, overall and per value of one label, on a
    cache: the same latent read in another model's activations (token-aligned caches)."""
    from activations.cache import open_cache
    from sae.load import check_fits

    with open_cache(cache_path) as cache:
        check_fits(sae, cache.d_model, hook)
        col = cache.column(group)
        vals = np.unique(col[col >= 0])
        sums = torch.zeros(len(vals), sae.cfg.d_sae, dtype=torch.float64)
        count = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
        start = 0
        for x in cache.batches(hook, batch_size):
            with torch.no_grad():
                f = sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
            c = col[start:start + len(f)]
            ok = torch.from_numpy(c >= 0)
            sums.index_add_(0, torch.from_numpy(np.searchsorted(vals, c[c >= 0])), f[ok].double())
            count += (f > 0).sum(0)
            start += len(f)
    sizes = torch.from_numpy(np.array([(col == v).sum() for v in vals], np.float64))
    return {"values": vals.tolist(), "density": (count / len(col)).tolist(), "mean": (sums / sizes[:, None]).tolist()}
