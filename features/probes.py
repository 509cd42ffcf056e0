"""Which latents encode an intermediate value, and how much of the value the SAE keeps.

Per latent, the best one-vs-rest AUROC of its activation for the value at the labelled
positions (rank-based, ties averaged; 0.5 = no information, 1 = a perfect detector of one
value). Then a multinomial logistic probe on the top-m latents (sparse) against the same
probe on the raw activation (dense), trained on one half of the rows and scored on the
other: how much of the value the SAE's code keeps.
"""

from __future__ import annotations

import numpy as np
import torch


def _ranks(f: torch.Tensor) -> torch.Tensor:
    """Column-wise ranks 1..N of f (N, d), ties given their average rank."""
    n, d = f.shape
    order = f.argsort(0)
    sorted_f = f.gather(0, order)
    r = torch.empty_like(f, dtype=torch.float64)
    base = torch.arange(1, n + 1, dtype=torch.float64)[:, None].expand(n, d)
    r.scatter_(0, order, base)
    # average ties: for each column, runs of equal sorted values share the mean of their ranks
    for j in range(d):
        col = sorted_f[:, j]
        change = torch.ones(n, dtype=torch.bool)
        change[1:] = col[1:] != col[:-1]
        if change.all():
            continue
        run_id = change.cumsum(0) - 1
        sums = torch.zeros(int(run_id[-1]) + 1, dtype=torch.float64).index_add_(0, run_id, base[:, 0])
        counts = torch.zeros_like(sums).index_add_(0, run_id, torch.ones(n, dtype=torch.float64))
        r[order[:, j], j] = (sums / counts)[run_id]
    return r


def best_auroc(f: torch.Tensor, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(d,) the best one-vs-rest AUROC of each column of f (N, d) over the classes in y, and
    (d,) the class it detects. Classes with fewer than 2 rows or no negatives are skipped."""
    r = _ranks(f.double())
    y = torch.as_tensor(y)
    best = torch.full((f.shape[1],), 0.5, dtype=torch.float64)
    cls = torch.full((f.shape[1],), -1, dtype=torch.long)
    for c in torch.unique(y):
        pos = y == c
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos < 2 or n_neg < 1:
            continue
        auc = (r[pos].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        better = auc > best
        best = torch.where(better, auc, best)
        cls = torch.where(better, torch.full_like(cls, int(c)), cls)
    return best, cls


def probe_accuracy(x: torch.Tensor, y: np.ndarray, seed: int = 0, steps: int = 300, lr: float = 0.05,
                   l2: float = 1e-4) -> dict:
    """Held-out accuracy of a multinomial logistic probe (full-batch Adam, inputs standardised),
    trained on a random half of the rows and tested on the other half."""
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    if n < 4:
        raise ValueError(f"a probe needs at least 4 rows, got {n}")
    perm = torch.randperm(n, generator=g)
    tr, te = perm[: n // 2], perm[n // 2:]
    classes, yi = np.unique(y, return_inverse=True)
    yi = torch.as_tensor(yi)
    x = x.float()
    mu, sd = x[tr].mean(0), x[tr].std(0).clamp_min(1e-6)
    z = (x - mu) / sd
    w = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(z[tr] @ w + b, yi[tr]) + l2 * w.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = ((z[te] @ w + b).argmax(-1) == yi[te]).float().mean().item()
    return {"accuracy": acc, "n_test": len(te), "chance": float(np.bincount(yi[te].numpy()).max() / len(te))}


def value_probes(feats: torch.Tensor, acts: torch.Tensor, y: np.ndarray, top_m: int = 16, seed: int = 0) -> dict:
    """AUROC per latent, and the sparse (top-m latents) vs dense (raw activation) probe."""
    auc, cls = best_auroc(feats, y)
    top = auc.argsort(descending=True)[:top_m]
    return {"auroc": auc, "detects": cls, "top": top,
            "sparse_probe": probe_accuracy(feats[:, top], y, seed),
            "dense_probe": probe_accuracy(acts, y, seed)}
