"""Reconstruction and sparsity of an SAE on cached activations, and transfer between models
(after Kissane et al. 2024, "SAEs (usually) transfer between base and chat models"): the
same metrics for an SAE on another model's activations of the same tokens.

Streaming: one pass, memory independent of the number of rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from activations.cache import open_cache
from activations.tokens import right_pad
from sae.load import check_fits

DENSE_THRESHOLD = 0.1  # a latent firing on more than 10% of tokens counts as dense


@torch.no_grad()
def reconstruction_metrics(sae, batches: Iterable[torch.Tensor], dense_threshold: float = DENSE_THRESHOLD) -> dict:
    """Over all rows of `batches` (each (B, d_in)):

    explained_variance = 1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2
    mse                = mean over rows and dimensions of (x - x_hat)^2
    cosine             = mean over rows of cos(x, x_hat)
    l0                 = mean active latents per row
    dead_fraction      = latents that never fired; dense_fraction: fired on > `dense_threshold` of rows
    """
    n, sse, cos_sum, l0_sum = 0, 0.0, 0.0, 0.0
    sum_x = sum_x2 = fires = None
    for x in batches:
        x = x.to(sae.W_enc.device, sae.W_enc.dtype)
        feats = sae.encode(x)
        x_hat = sae.decode(feats)
        x, x_hat = x.float(), x_hat.float()
        if sum_x is None:
            sum_x = torch.zeros(x.shape[1], dtype=torch.float64)
            sum_x2 = torch.zeros((), dtype=torch.float64)
            fires = torch.zeros(feats.shape[1], dtype=torch.float64)
        n += len(x)
        sse += (x - x_hat).double().pow(2).sum().item()
        cos_sum += torch.nn.functional.cosine_similarity(x, x_hat, dim=-1).double().sum().item()
        active = feats != 0
        l0_sum += active.double().sum().item()
        fires += active.double().sum(0).cpu()
        sum_x += x.double().sum(0).cpu()
        sum_x2 += x.double().pow(2).sum().cpu()
    if n == 0:
        raise ValueError("no rows to evaluate on (check the filter)")
    sst = (sum_x2 - sum_x.pow(2).sum() / n).item()  # sum ||x - mean||^2
    d = sum_x.numel()
    return {"n": n, "explained_variance": 1 - sse / sst if sst > 0 else float("nan"), "mse": sse / (n * d),
            "cosine": cos_sum / n, "l0": l0_sum / n, "dead_fraction": (fires == 0).double().mean().item(),
            "dense_fraction": (fires / n > dense_threshold).double().mean().item()}


def evaluate_on_cache(sae, cache_path: str | Path, hook: str, where=None, batch_size: int = 4096,
                      max_rows: int | None = None) -> dict:
    """`reconstruction_metrics` on the cache's rows of `hook` (those passing `where`, at most
    `max_rows`, in row order)."""
    with open_cache(cache_path) as cache:
        check_fits(sae, cache.d_model, hook)

        def rows():
            seen = 0
            for x in cache.batches(hook, batch_size, where):
                if max_rows is not None and seen + len(x) > max_rows:
                    x = x[:max_rows - seen]
                if len(x):
                    yield x
                seen += len(x)
                if max_rows is not None and seen >= max_rows:
                    return

        return reconstruction_metrics(sae, rows())


def transfer_matrix(saes: dict[str, object], caches: dict[str, str | Path], hook: str, **kw) -> dict:
    """metrics[sae_name][cache_name]: every SAE on every model's activations of the same
    tokens (the diagonal is each SAE on its own model)."""
    return {s: {c: evaluate_on_cache(sae, path, hook, **kw) for c, path in caches.items()} for s, sae in saes.items()}


@torch.no_grad()
def spliced_loss(sae, model, hook: str, token_ids, masks: dict[str, list] | None = None,
                 batch_size: int = 32) -> dict:
    """Loss when the SAE's reconstruction replaces the activation at `hook`, with SAELens'
    `get_recons_loss` (clean, spliced and zero-ablated runs of the TransformerBridge).

    token_ids: one int array per sequence. masks: name -> one bool array per sequence
    selecting positions (e.g. CoT-step tokens); "all" (every position) is always included.
    At a selected position t, the KL compares the next-token distributions and the CE
    scores token t+1. Per mask: ce_clean, ce_sae, ce_ablation, ce_gap = ce_ablation - ce_clean,
    ce_recovered = (ce_ablation - ce_sae) / ce_gap, kl_sae, kl_ablation, n.
    """
    import numpy as np
    from sae_lens.evals import get_recons_loss
    from sae_lens.training.activation_scaler import ActivationScaler

    masks = {"all": [np.ones(len(x), dtype=bool) for x in token_ids], **(masks or {})}
    sums: dict[str, dict[str, float]] = {m: {k: 0.0 for k in ("ce_clean", "ce_sae", "ce_ablation", "kl_sae",
                                                                "kl_ablation")} | {"n": 0} for m in masks}
    for b in range(0, len(token_ids), batch_size):
        batch = token_ids[b:b + batch_size]
        tokens, valid = right_pad(batch)
        lengths = valid.sum(1)
        device = next(model.parameters()).device  # the bridge passes tensors to HF as they are
        out = get_recons_loss(sae, model, ActivationScaler(), tokens.to(device), compute_kl=True,
                              compute_ce_loss=True, hook_name=hook)
        T = tokens.shape[1]
        # positions t whose next token t+1 exists: (B, T-1), aligned with the per-token CE
        has_next = torch.arange(T - 1)[None, :] < (lengths[:, None] - 1)
        for name, m in masks.items():
            sel = torch.zeros(len(batch), T, dtype=torch.bool)
            for r, x in enumerate(m[b:b + batch_size]):
                sel[r, :len(x)] = torch.as_tensor(np.asarray(x, dtype=bool))
            sel = sel[:, :-1] & has_next
            s = sums[name]
            s["n"] += int(sel.sum())
            for key, src in (("ce_clean", "ce_loss_without_sae"), ("ce_sae", "ce_loss_with_sae"),
                             ("ce_ablation", "ce_loss_with_ablation"), ("kl_sae", "kl_div_with_sae"),
                             ("kl_ablation", "kl_div_with_ablation")):
                v = out[src].float().cpu()
                s[key] += float(v[:, :T - 1][sel].sum())
    result = {}
    for name, s in sums.items():
        n = s["n"]
        if n == 0:
            result[name] = {"n": 0}
            continue
        r = {k: v / n for k, v in s.items() if k != "n"} | {"n": n}
        gap = r["ce_ablation"] - r["ce_clean"]
        # A small gap (an ablation that barely hurts, e.g. on unpredictable tokens) makes
        # CE recovered meaningless: it is reported beside it.
        r["ce_gap"] = gap
        r["ce_recovered"] = (r["ce_ablation"] - r["ce_sae"]) / gap if gap != 0 else float("nan")
        result[name] = r
    return result
