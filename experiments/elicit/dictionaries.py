"""The elicit stage's two other dictionaries at a site, and the base-free ablation through each:

    crosscoders   a base x variant crosscoder per site of `elicit.crosscoder_sites`, trained on
                  the two models' token-aligned training caches (the same rows as the site SAEs:
                  `SiteRows`), with the AuxK dead-latent remedy. Its latents are classed by
                  decoder norms (Minder et al. 2025: `sae.diff`) on held-out rows, explained by
                  the ground-truth labels, and the variant's fine-tuned-leaning latents
                  (Delta < 0.4: |variant decoder| > 1.25 |base decoder|; fine-tuned-only,
                  Delta < 0.1, first) are ablated in the variant alone: its code read with the
                  base's encoder term replaced by its mean over the training set's answer-prefix
                  rows (`sae.crosscoder_view.OneModelView`), so no base forward pass runs.
    transcoders   the variant's transcoder of each MLP of `elicit.transcoders`: the latents whose
                  ablation most raises log p(the CoT's answer) (attribution on the choice set's
                  corrupted items, the code read from the MLP input) ablated out of the MLP output.

Each is swept over `elicit.counts`, chosen on the choice set and set against matched random
latents, as the site SAEs' interventions are (`experiments.elicit.interventions`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from experiments.elicit.interventions import add_null, random_latent_null, sweep
from experiments.elicit.site_data import SiteRows, explain_site
from features.ladder import ablate_rows, ablation_attribution, code_gradient, transcoder_ablation

FT_LEANING_BELOW = 0.4
"""Delta below which a crosscoder latent leans to the variant (outside the shared band |Delta - 1/2| < 0.1)."""


def train_crosscoders(run, sc, variants: list[str], hooks: list[str], device: str, seed: int, log) -> None:
    """elicit/crosscoders/<v>/<site>/ for every variant and site of `hooks`."""
    import dataclasses

    from sae.crosscoder import train_crosscoder

    cfg = dataclasses.replace(sc.crosscoder, device=device, seed=seed)
    for v in variants:
        for site in hooks:
            t0 = time.perf_counter()
            met = train_crosscoder(run.elicit_cache("base"), run.elicit_cache(v), site, cfg,
                                   run.elicit_crosscoder(v, site), names=("base", v),
                                   where=SiteRows(sc.other_fraction), overwrite=True)
            log(f"  elicit crosscoder {v} {site}: train dead {met['train_dead_fraction']:.1%}, "
                f"EV {met['train_explained_variance']:.3f} ({time.perf_counter() - t0:.1f} s)")


@torch.no_grad()
def crosscoder_summary(run, v: str, site: str, sc, tok) -> tuple[dict, object]:
    """The crosscoder's held-out quality (all held-out rows, and the answer prefix alone), its
    latent classes and explanations; and its one-model view of the variant."""
    from activations.cache import open_paired
    from sae.crosscoder import crosscoder_metrics, load_crosscoder
    from sae.crosscoder_view import OneModelView, other_term
    from sae.diff import diff_table

    cc = load_crosscoder(run.elicit_crosscoder(v, site))
    with open_paired(run.elicit_cache("base"), run.elicit_cache(v)) as pair:
        def rows(where):
            return (torch.stack(p, 1) for p in pair.batches(site, 8192, where))

        held = SiteRows(sc.other_fraction, heldout=True)
        heldout = crosscoder_metrics(cc, rows(held))
        prefix = crosscoder_metrics(cc, rows(SiteRows(0.0, heldout=True)))
        table = diff_table(cc, lambda: rows(held))
        view = OneModelView(cc, 1, other_term(cc, rows(SiteRows(0.0)), 0))
    classes = [t["class"] for t in table["latents"]]
    rec = {"path": run.relative(run.elicit_crosscoder(v, site)), "heldout": heldout,
           "dead_fraction": heldout["dead_fraction"], "dead_at_answer_prefix": prefix["dead_fraction"],
           "counts": table["counts"], "latent_class": classes, "delta": [t["delta"] for t in table["latents"]],
           "thresholds": table["thresholds"],
           "explanations": explain_site(cc, run.elicit_cache(v), site, tok, paired_with=run.elicit_cache("base"))}
    return rec, view


def finetuned_candidates(delta: list[float], classes: list[str], score: torch.Tensor) -> tuple[list[int], int]:
    """The fine-tuned-leaning latents (Delta < FT_LEANING_BELOW, not dead): the fine-tuned-only
    ones first, each group by `score` (ablation attribution), descending; and how many are
    fine-tuned-only."""
    d = np.asarray(delta)
    live = np.array([c != "dead" for c in classes])
    ft_only = np.flatnonzero(live & (d < 0.1))
    leaning = np.flatnonzero(live & (d >= 0.1) & (d < FT_LEANING_BELOW))
    by = lambda idx: sorted(idx.tolist(), key=lambda j: -float(score[j]))  # noqa: E731
    return by(ft_only) + by(leaning), len(ft_only)


def crosscoder_site(ft, view, rec: dict, site: str, probe, measure, ref: dict, sc, seed: int) -> dict:
    """ablate_finetuned_latents through the crosscoder's view of the variant, into `rec`."""
    ch = probe.choose
    corrupt = np.flatnonzero(ch.kind == 1)
    code, grad = code_gradient(ft, view, site, [ch.ids[i] for i in corrupt], ch.implied[corrupt])
    order, n_ft_only = finetuned_candidates(rec["delta"], rec["latent_class"], ablation_attribution(grad, code))
    # a matched random null needs as many unused latents as chosen ones
    sizes = sorted({n for n in sc.counts + [n_ft_only, len(order)] if 0 < n <= min(len(order), view.cfg.d_sae // 2)})
    make = lambda lat: (lambda s, a, b: ablate_rows(view, lat))  # noqa: E731
    out = sweep(make, order, sizes, measure, ref, sc.max_accuracy_drop) | {
        "candidates": len(order), "finetuned_only": n_ft_only,
        "view": "variant alone; base encoder term = its mean over answer-prefix training rows"}
    return add_null(out, measure, random_latent_null(make, out, (code > 0).float().mean(0), seed, sc.control_pool),
                    sc.null_draws, "matched random latents")


def transcoder_site(ft, tc, layer: int, probe, measure, ref: dict, sc, seed: int) -> dict:
    """ablate_shortcut_latents through the variant's transcoder of MLP `layer`."""
    ch = probe.choose
    corrupt = np.flatnonzero(ch.kind == 1)
    code, grad = code_gradient(ft, tc, f"blocks.{layer}.hook_mlp_out", [ch.ids[i] for i in corrupt],
                               ch.implied[corrupt], read_hook=f"blocks.{layer}.hook_resid_mid")
    order = ablation_attribution(grad, code).argsort(descending=True)
    make = lambda lat: (lambda s, a, b: transcoder_ablation(tc, layer, lat))  # noqa: E731
    # at most half the latents: a matched random null needs as many unused ones
    out = sweep(make, order, [n for n in sc.counts if n <= tc.cfg.d_sae // 2], measure, ref, sc.max_accuracy_drop)
    return add_null(out, measure, random_latent_null(make, out, (code > 0).float().mean(0), seed, sc.control_pool),
                    sc.null_draws, "matched random latents")
