"""The `sae` stage: an SAE per model at one hook, an architecture frontier on the base model,
crosscoders between the base and chosen variants, and their evaluation on held-out tokens.

    saes/<model>/                 SAE of each model (SAELens format; all from the same
                                  initialisation and data order: paired)
    saes/frontier/<architecture>/ the base model's SAE of each other architecture
    saes/crosscoder-<variant>/    BatchTopK crosscoder base x variant, with diff.json
    saes/eval.json                every metric below

Held out: examples whose index is a multiple of `heldout_every` (all their text variants)
are never trained on; every metric is measured on them.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sae.config import SAETrainConfig
from sae.crosscoder import CrosscoderConfig


@dataclass(frozen=True)
class ExampleSplit:
    """A cache row filter: rows of examples with `example % every == 0` (held out) or the
    others (train). A dataclass, so its repr is stable (it keys SAE checkpoints)."""

    every: int
    heldout: bool

    def __call__(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        return (cols["example"] % self.every == 0) == self.heldout


@dataclass
class FrontierPoint:
    """One SAE of the base model's frontier: an architecture and its sparsity setting."""

    architecture: str
    """A SAELens training architecture."""
    k: int | None = None
    """Active latents (topk, batchtopk, matryoshka_batchtopk); default: the `train` section's."""
    sparsity_coefficient: float | None = None
    """L1 / L0 coefficient (standard, gated, jumprelu); default: the `train` section's."""
    options: dict[str, Any] = field(default_factory=dict)
    """More SAELens config fields for this architecture (replace the `train` section's)."""

    @property
    def name(self) -> str:
        return self.architecture + (f"-k{self.k}" if self.k is not None else "") + (
            f"-c{self.sparsity_coefficient:g}" if self.sparsity_coefficient is not None else "")


@dataclass
class SAEStageConfig:
    """The SAEs of a run."""

    hook: str = "blocks.1.hook_resid_post"
    """The hook every SAE reads (must be in the caches)."""
    train: SAETrainConfig = field(default_factory=lambda: SAETrainConfig(architecture="topk", expansion=4, k=16,
                                                                          lr=1e-3, steps=100, batch_size=4096,
                                                                          buffer_rows=65_536, norm_batches=5,
                                                                          checkpoints=0))
    """Training of each model's SAE (and of the frontier's, with their architecture). The
    stage writes into a temporary folder, so checkpoints could not be resumed from: keep 0."""
    frontier: list[FrontierPoint] = field(default_factory=lambda: [FrontierPoint(a) for a in (
        "standard", "batchtopk", "jumprelu", "gated", "matryoshka_batchtopk")])
    """More SAEs of the base model (architecture and sparsity each) for the L0-vs-explained-
    variance frontier; the base model's own SAE is on it too."""
    crosscoder_variants: list[str] = field(default_factory=list)
    """Variants diffed against the base with a crosscoder (empty: none)."""
    crosscoder: CrosscoderConfig = field(default_factory=lambda: CrosscoderConfig(expansion=4, k=16, lr=1e-3,
                                                                                   steps=100, batch_size=4096,
                                                                                   buffer_rows=65_536,
                                                                                   norm_batches=5))
    """Training of each crosscoder."""
    heldout_every: int = 5
    """Examples with index % heldout_every == 0 are held out for evaluation."""
    spliced_sequences: int = 200
    """Held-out sequences run through each model with its SAE spliced in (CE recovered, KL)."""

    def __post_init__(self):
        names = [p.name for p in self.frontier]
        if len(set(names)) < len(names):
            raise ValueError(f"sae.frontier: two points with the same settings: {names}")
        if self.heldout_every < 2:
            raise ValueError(f"sae.heldout_every must be >= 2 (1 would hold out everything), got {self.heldout_every}")
        for where, c in [("sae.train", self.train)] + [(f"sae.frontier[{i}]", dataclasses.replace(
                self.train, architecture=p.architecture, options=p.options)) for i, p in enumerate(self.frontier)]:
            try:
                c.check()
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None


def cache_sequences(cache_path: Path, limit: int, where=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token ids and CoT-step masks of the first `limit` sequences of a cache (those with a
    row passing `where`, a function of the label columns)."""
    from activations.cache import open_cache
    from experiments.tasks import ROLES

    with open_cache(cache_path) as c:
        cols = {n: c.column(n) for n in ("seq", "token_ids", "role", *c.meta["label_names"])}
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


def run_sae_suite(run: Path, models: list[str], cfg: SAEStageConfig, device: str, out: Path, log=print) -> dict:
    """Train and evaluate everything under `out` (a temporary folder the caller renames)."""
    import torch

    from activations.cache import open_paired
    from activations.models import load_bridge
    from sae.crosscoder import crosscoder_metrics, load_crosscoder, train_crosscoder
    from sae.diff import diff_table
    from sae.evaluate import evaluate_on_cache, spliced_loss
    from sae.load import load_sae_folder
    from sae.train import train_sae

    caches = {m: run / "activations" / m for m in models}
    train, held = ExampleSplit(cfg.heldout_every, False), ExampleSplit(cfg.heldout_every, True)
    for m in models[1:]:  # refuse caches that are not token-aligned pairs before any training
        with open_paired(caches[models[0]], caches[m]):
            pass
    tcfg = dataclasses.replace(cfg.train, device=device)
    result: dict = {"hook": cfg.hook, "heldout_every": cfg.heldout_every, "saes": {}, "frontier": {},
                    "transfer": {}, "crosscoders": {}}

    def trained(name: str, cache: Path, c: SAETrainConfig, folder: Path) -> dict:
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # the L0 warning is in the metrics and logged below
            warnings.simplefilter("ignore", UserWarning)
            m = train_sae(cache, cfg.hook, c, folder, where=train)
        sae = load_sae_folder(folder, device)
        ev = evaluate_on_cache(sae, cache, cfg.hook, where=held)
        log(f"  sae {name}: {c.architecture} L0 {ev['l0']:.1f}, held-out explained variance "
            f"{ev['explained_variance']:.3f} ({time.perf_counter() - t0:.1f} s)"
            + (f"; warning: {m['warning']}" if "warning" in m else ""))
        return {"train": m, "heldout": ev}

    for name in models:  # same seed, same token-aligned rows: paired SAEs
        result["saes"][name] = trained(name, caches[name], tcfg, out / name)
    for p in cfg.frontier:
        c = dataclasses.replace(tcfg, architecture=p.architecture, k=tcfg.k if p.k is None else p.k,
                                sparsity_coefficient=tcfg.sparsity_coefficient if p.sparsity_coefficient is None
                                else p.sparsity_coefficient, options=p.options)
        result["frontier"][p.name] = trained(f"base/{p.name}", caches[models[0]], c, out / "frontier" / p.name)
    uses_k = "topk" in tcfg.architecture
    own = FrontierPoint(tcfg.architecture, k=tcfg.k if uses_k else None,
                        sparsity_coefficient=None if uses_k else tcfg.sparsity_coefficient)
    result["frontier"][f"{own.name} (base SAE)"] = result["saes"][models[0]]

    saes = {name: load_sae_folder(out / name, device) for name in models}
    for name, sae in saes.items():  # transfer: every SAE on every model's held-out activations
        result["transfer"][name] = {c: evaluate_on_cache(sae, caches[c], cfg.hook, where=held) for c in models}
    t0 = time.perf_counter()
    for name, sae in saes.items():
        ids, step = cache_sequences(caches[name], cfg.spliced_sequences, held)
        bridge = load_bridge(str(run / "models" / name), device)
        result["saes"][name]["spliced"] = spliced_loss(sae, bridge, cfg.hook, ids, {"step": step})
    log(f"  sae spliced loss of {len(saes)} models: {time.perf_counter() - t0:.1f} s")

    ccfg = dataclasses.replace(cfg.crosscoder, device=device)
    for v in cfg.crosscoder_variants:
        if v not in models:
            raise ValueError(f"sae.crosscoder_variants: {v!r} is not a model of this run; use some of {models[1:]}")
        t0 = time.perf_counter()
        folder = out / f"crosscoder-{v}"
        m = train_crosscoder(caches[models[0]], caches[v], cfg.hook, ccfg, folder, (models[0], v), where=train)
        cc = load_crosscoder(folder, device)
        with open_paired(caches[models[0]], caches[v]) as pair:
            def held_pairs():
                return (torch.stack(p, 1) for p in pair.batches(cfg.hook, 4096, held))

            table = diff_table(cc, held_pairs)
            heldout = crosscoder_metrics(cc, held_pairs())
        (folder / "diff.json").write_text(json.dumps(table, indent=1))
        result["crosscoders"][v] = {"train": m, "heldout": heldout, "counts": table["counts"],
                                    "r": [x["r"] for x in table["latents"]], "class": [x["class"] for x in table["latents"]]}
        if not ccfg.k / 1.5 <= heldout["l0"] <= ccfg.k * 1.5:
            result["crosscoders"][v]["warning"] = f"held-out L0 {heldout['l0']:.1f} is off k={ccfg.k} by more than 1.5x"
        log(f"  crosscoder base x {v}: held-out L0 {heldout['l0']:.1f}, explained variance "
            + ", ".join(f"{heldout[f'explained_variance_{n}']:.3f}" for n in cc.models)
            + f"; {table['counts']} ({time.perf_counter() - t0:.1f} s)")
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    return result
