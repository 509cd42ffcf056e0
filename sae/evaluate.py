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
        x = x.to(sae.W_enc.device, torch.float32)
        feats = sae.encode(x)
        x_hat = sae.decode(feats)
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
