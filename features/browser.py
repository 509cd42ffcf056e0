"""Per-latent data for the feature browser, streamed from an activation cache.

`latent_data(sae, cache, hook, cfg)` reads the cache three times in row order (never all
activations at once): pass 1 the density, mean, max and top-activating rows of every
latent, and its mean activation per value of the group labels (e.g. token role, CoT step);
pass 2 an activation histogram per latent (bins of its own max) and a few rows sampled
from each activation quantile interval (seeded); pass 3 encodes only the rows the chosen
contexts need. The result is plain arrays and lists, ready for JSON or HTML
(`features.browser_html`).

Contexts are windows of the row's own sequence (cache rows of a sequence are contiguous).
`max_rows` reads only the first rows of a cache (the elicit stage's caches hold ~2M rows);
`PairedRows` and `CrosscoderCode` let a base x variant crosscoder be read the same way, on
the paired rows of two token-aligned caches.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

# numpy and torch are imported inside the functions: the CLI imports BrowserConfig for --help


@dataclass
class BrowserConfig:
    """What the feature browser shows per latent."""

    top: int = 10
    """Top-activating contexts per latent."""
    quantiles: int = 4
    """Activation intervals (equal fractions of the latent's max) sampled for contexts."""
    per_quantile: int = 2
    """Contexts sampled from each interval (seeded)."""
    bins: int = 20
    """Histogram bins between 0 and the latent's max."""
    before: int = 24
    """Tokens of context before the activating token (within its sequence)."""
    after: int = 4
    """Tokens of context after it."""
    logits: int = 8
    """Tokens listed for the largest positive and negative logit effects."""
    dense: float = 0.1
    """A latent active on more than this fraction of tokens counts as dense."""
    batch_size: int = 4096
    """Cache rows encoded at once."""
    seed: int = 0
    """Seeds the quantile sampling."""
    elicit: bool = True
    """Also browse the elicit stage's dictionaries (its site SAEs, transcoders and crosscoders), when
    the run has them."""
    elicit_rows: int = 200_000
    """Rows read from each elicit training cache (its first rows; the pages say how many of how
    many): those caches hold ~2M rows in the default config, each read three times per dictionary."""

    def __post_init__(self):
        if min(self.top, self.quantiles, self.bins, self.batch_size, self.elicit_rows) < 1 or min(
                self.before, self.after, self.per_quantile) < 0:
            raise ValueError("browser: top, quantiles, bins, batch_size and elicit_rows must be >= 1; before, "
                             "after, per_quantile >= 0")


class PairedRows:
    """Two token-aligned caches (base first) read as one: `batches` gives paired rows
    (B, 2, d_in), columns and labels are the first cache's (the same tokens). What
    `latent_data` reads of a cache, for a crosscoder."""

    def __init__(self, base: str | Path, other: str | Path):
        self.base, self.other = base, other

    def __enter__(self):
        from activations.cache import open_paired

        self.pair = open_paired(self.base, self.other)  # refuses caches of different tokens
        self.meta, self.d_model = self.pair.a.meta, self.pair.a.d_model
        return self

    def __exit__(self, *exc):
        self.pair.close()

    def column(self, name: str):
        return self.pair.a.column(name)

    def batches(self, hook: str, batch_size: int):
        import torch

        return (torch.stack(p, 1) for p in self.pair.batches(hook, batch_size))


class CrosscoderCode:
    """A crosscoder (`sae.crosscoder`) as `latent_data` reads an SAE: `encode` of paired rows
    (B, 2, d_in), `cfg.d_sae` and `cfg.d_in`; `W_dec` is model `m`'s decoder (d_sae, d_in),
    for `logit_effects`."""

    def __init__(self, cc, m: int = 1):
        self.cc, self.W_enc, self.W_dec = cc, cc.W_enc, cc.W_dec[:, m]
        self.cfg = SimpleNamespace(d_sae=cc.d_sae, d_in=cc.d_in, metadata=None)  # no hook name to check

    def encode(self, x):
        return self.cc.encode(x)


def _encode(sae, x):
    """(B, d_in) -> (B, d_sae) float32 codes on the CPU."""
    return sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()


def _limited(batches, n: int):
    """The batches of the first `n` rows (stops reading there)."""
    start = 0
    for x in batches:
        if start >= n:
            return
        yield x[:n - start]
        start += len(x)


def latent_data(sae, cache_path, hook: str, cfg: BrowserConfig,
                group_labels: tuple[str, ...] = ("role", "step"), max_rows: int | None = None) -> dict:
    """Everything the browser shows about each latent of `sae` on one cache (a path, or an
    open cache-like object such as `PairedRows`), on its first `max_rows` rows (None: all).

    Returns {"n_rows" (rows read), "n_total" (rows in the cache), "density" (d_sae,),
    "mean_active", "max", "hist" (d_sae, bins), "groups": {label: {"values": [...], "mean":
    (len(values), d_sae)}}, "top" and "sampled":
    per latent a list of {"row", "act"}, "contexts": {row: {"rows": [first, last], "tokens",
    "labels": {label: [...]}, "acts": {latent: [...]}}}}.
    """
    import torch

    with torch.no_grad():
        return _latent_data(sae, cache_path, hook, cfg, group_labels, max_rows)


def _latent_data(sae, cache_path, hook, cfg, group_labels, max_rows) -> dict:
    import numpy as np
    import torch

    from activations.cache import open_cache
    from sae.load import check_fits

    d_sae = sae.cfg.d_sae
    source = open_cache(cache_path) if isinstance(cache_path, (str, Path)) else nullcontext(cache_path)
    with source as cache:
        check_fits(sae, cache.d_model, hook)
        seq = cache.column("seq")
        n_total = len(seq)
        n = n_total if max_rows is None else min(max_rows, n_total)
        seq = seq[:n]
        labels = {g: cache.column(g)[:n] for g in group_labels if g in cache.meta["label_names"]}
        # pass 1: counts, sums, max, top rows, per-group sums
        count = torch.zeros(d_sae, dtype=torch.float64)
        total = torch.zeros(d_sae, dtype=torch.float64)
        peak = torch.zeros(d_sae)
        k = min(cfg.top, n)
        top_v = torch.full((d_sae, k), -1.0)
        top_i = torch.zeros(d_sae, k, dtype=torch.long)
        gvals = {g: np.unique(c[c >= 0]) for g, c in labels.items()}  # -1 means "not labelled"
        gsum = {g: torch.zeros(len(v), d_sae, dtype=torch.float64) for g, v in gvals.items()}
        start = 0
        for x in _limited(cache.batches(hook, cfg.batch_size), n):
            f = _encode(sae, x)
            count += (f > 0).sum(0)
            total += f.sum(0, dtype=torch.float64)
            peak = torch.maximum(peak, f.amax(0))
            bv, bi = f.T.topk(min(k, len(f)), dim=1)
            v = torch.cat([top_v, bv], 1)
            i = torch.cat([top_i, bi + start], 1)
            order = torch.argsort(v, dim=1, descending=True, stable=True)[:, :k]  # ties across batches: earlier first
            top_v, top_i = v.gather(1, order), i.gather(1, order)
            for g, col in labels.items():
                c = col[start:start + len(f)]
                ok = torch.from_numpy(c >= 0)
                gsum[g].index_add_(0, torch.from_numpy(np.searchsorted(gvals[g], c[c >= 0])), f[ok].double())
            start += len(f)
        # pass 2: histograms and quantile samples
        hist = torch.zeros(d_sae * cfg.bins, dtype=torch.float64)
        rng = np.random.default_rng(cfg.seed)
        kept = np.zeros((0, 4))  # (latent, interval, key, row)
        safe = peak.clamp_min(1e-12)
        start = 0
        for x in _limited(cache.batches(hook, cfg.batch_size), n):
            f = _encode(sae, x)
            r, lat = (f > 0).nonzero(as_tuple=True)
            frac = f[r, lat] / safe[lat]  # in (0, 1]: the max falls in the last bin
            b = (frac * cfg.bins).long().clamp(0, cfg.bins - 1)
            hist.index_add_(0, lat * cfg.bins + b, torch.ones(len(lat), dtype=torch.float64))
            if cfg.per_quantile:
                q = (frac * cfg.quantiles).long().clamp(0, cfg.quantiles - 1).numpy()
                new = np.stack([lat.numpy(), q, rng.random(len(q)), r.numpy() + start], 1)
                both = np.concatenate([kept, new])
                order = np.lexsort((both[:, 2], both[:, 1], both[:, 0]))  # by latent, interval, key
                both = both[order]
                group = both[:, 0] * cfg.quantiles + both[:, 1]
                first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
                rank = np.arange(len(both)) - np.repeat(first, np.diff(np.r_[first, len(both)]))
                kept = both[rank < cfg.per_quantile]
            start += len(f)
        # the contexts: rows before/after within each sequence
        seq_start = np.r_[0, np.flatnonzero(np.diff(seq)) + 1]
        seq_end = np.r_[seq_start[1:], n]
        which = np.searchsorted(seq_start, np.arange(n), side="right") - 1
        top_rows = [[(int(i), float(v)) for v, i in zip(top_v[j], top_i[j]) if v > 0] for j in range(d_sae)]
        sampled = [[] for _ in range(d_sae)]
        for lat, q, _, row in kept:
            sampled[int(lat)].append((int(row), int(q)))
        wanted: dict[int, set[int]] = {}  # row -> latents whose activations that context shows
        for j in range(d_sae):
            for row, _ in top_rows[j]:
                wanted.setdefault(row, set()).add(j)
            for row, _ in sampled[j]:
                wanted.setdefault(row, set()).add(j)
        spans = {row: (max(seq_start[which[row]], row - cfg.before), min(seq_end[which[row]], row + cfg.after + 1))
                 for row in wanted}
        need = np.zeros(n, bool)
        for a, b in spans.values():
            need[a:b] = True
        # pass 3: encode only the rows the contexts show
        codes: dict[int, torch.Tensor] = {}
        start = 0
        for x in _limited(cache.batches(hook, cfg.batch_size), n):
            sel = np.flatnonzero(need[start:start + len(x)])
            if len(sel):
                f = _encode(sae, x[torch.from_numpy(sel)])
                codes.update({int(start + s): f[t] for t, s in enumerate(sel)})
            start += len(x)
        tokens = cache.column("token_ids")[:n]
        contexts = {}
        for row, lats in wanted.items():
            a, b = spans[row]
            contexts[row] = {"rows": [int(a), int(b)], "at": int(row - a), "tokens": tokens[a:b].tolist(),
                             "labels": {g: c[a:b].tolist() for g, c in labels.items()},
                             "acts": {j: [round(float(codes[t][j]), 4) for t in range(a, b)] for j in sorted(lats)}}
    hist = hist.view(d_sae, cfg.bins)
    return {"n_rows": n, "n_total": n_total, "bins": cfg.bins, "quantiles": cfg.quantiles,
            "density": (count / n).tolist(), "mean_active": (total / count.clamp_min(1)).tolist(),
            "max": peak.tolist(), "hist": hist.long().tolist(),
            "groups": {g: {"values": gvals[g].tolist(), "mean": (gsum[g] / torch.from_numpy(
                np.array([(labels[g] == v).sum() for v in gvals[g]], np.float64)).clamp_min(1)[:, None]).tolist()}
                       for g in labels},
            "top": [[{"row": r, "act": round(v, 4)} for r, v in t] for t in top_rows],
            "sampled": [[{"row": r, "interval": q} for r, q in sorted(s, key=lambda t: (-t[1], t[0]))]
                        for s in sampled],
            "contexts": contexts}


def logit_effects(sae, unembed, n: int) -> dict:
    """Top positive and negative direct logit effects of each latent's unit decoder direction
    through the unembedding `unembed` (vocab, d_model), final norm ignored (as Neuronpedia).
    Returns {"pos": (d_sae, n) token ids, "pos_value", "neg", "neg_value"}."""
    import torch

    with torch.no_grad():
        d = sae.W_dec.detach().float().cpu()
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        eff = d @ unembed.detach().float().cpu().T  # (d_sae, vocab)
        n = min(n, eff.shape[1])
        pv, pi = eff.topk(n, dim=1)
        nv, ni = (-eff).topk(n, dim=1)
    return {"pos": pi.tolist(), "pos_value": pv.tolist(), "neg": ni.tolist(), "neg_value": (-nv).tolist()}
