"""The mechanistic half: where fine-tuning changed the computation, which latents it moved,
and whether steering them brings the base's CoT-following back.

Everything runs on model-independent probe items (`experiments.probe_items`): held-out
k-step problems and a variant's own training problems, each with its gold CoT and with
propagated corruptions, forced answer = argmax after the answer prefix. Metrics: accuracy
(gold CoT), follow (corrupted CoT), for the held-out and the trained set.

features stage  features/<variant>.json
  - ReasonScore of every latent of the model's own SAE (top latents listed)
  - latent shift at the answer position: base and variant read through the base's SAE
  - decoder matching of the paired SAEs (base latent -> most similar variant latent)
  - activation patching base -> variant and variant -> base, per layer, component
    (attention out, MLP out, residual) and position role: the oracle upper bound
steer stage     steering/<variant>.json
  - ablate the latents whose answer-position activation grew most (1..N), with matched
    random latents as the control; the difference-of-means vector (base - variant) x alpha,
    with a random direction of the same norm as the control; the base SAE's reconstruction
    without its error; the patching oracle; gap recovered per metric
  - causal validation in the base: ablating its top ReasonScore latents vs random ones
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from features.reason_score import ReasonScoreConfig

COMPONENTS = ("attn_out", "mlp_out", "resid_post")


@dataclass
class ElicitConfig:
    """The features and steer stages."""

    variants: list[str] = field(default_factory=list)
    """Variants to patch and steer (each against the base); empty: none."""
    k: int = 2
    """Chain length of the probe problems."""
    n: int = 200
    """Held-out problems (and at most this many of a variant's training problems)."""
    n_choose: int = 100
    """Other held-out problems, used only to choose latents and steering vectors."""
    reason_score: ReasonScoreConfig = field(default_factory=ReasonScoreConfig)
    """Which positions count as reasoning for ReasonScore."""
    top: int = 20
    """Latents listed per score in the tables."""
    patch_roles: list[str] = field(default_factory=lambda: ["question", "step", "last"])
    """Position roles patched (question, step, answer, last = the answer-prefix token, all)."""
    latent_counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128])
    """Numbers of most-grown latents ablated (the steering strengths of that intervention)."""
    alphas: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    """Scales of the difference-of-means vector."""
    validation_counts: list[int] = field(default_factory=lambda: [4, 16, 64])
    """Top-ReasonScore latents ablated in the base (causal validation), against random ones."""

    def __post_init__(self):
        if min(self.n, self.n_choose, self.k, self.top) < 1:
            raise ValueError("features: n, n_choose, k and top must be >= 1")
        if not self.latent_counts or min(self.latent_counts) < 1:
            raise ValueError("features.latent_counts must be a non-empty list of counts >= 1")


def gap_recovered(steered: dict, base: dict, finetuned: dict) -> dict:
    """(m_steered - m_ft) / (m_base - m_ft) with the steered rate's Wilson interval carried
    through (base and fine-tuned values taken as fixed); None where the gap is < 0.02."""
    gap = base["value"] - finetuned["value"]
    if steered["value"] is None or abs(gap) < 0.02:
        return {"value": None, "ci95": None, "gap": gap, "steered": steered["value"]}
    lo, hi = steered["ci95"]
    return {"value": (steered["value"] - finetuned["value"]) / gap, "gap": gap, "steered": steered["value"],
            "ci95": sorted([(lo - finetuned["value"]) / gap, (hi - finetuned["value"]) / gap])}


class Probe:
    """Probe items of one variant: held-out and trained sets, plus the choice set."""

    def __init__(self, run: Path, variant: str, task, tok, cfg: ElicitConfig, seed: int):
        from experiments.behavior.model_eval import trained_problems
        from experiments.behavior.suite import distinct_problems
        from experiments.probe_items import probe_items

        held = distinct_problems(task, cfg.n, cfg.k, seed + 1000)  # the behaviour suite's own held-out set
        seen = {ex.prompt for ex in held}
        choose = [ex for ex in distinct_problems(task, cfg.n + cfg.n_choose, cfg.k, seed + 7) if ex.prompt not in seen]
        self.sets = {"heldout": probe_items(task, tok, held, seed)}
        trained = trained_problems(run / "models" / variant, task) if variant != "base" else None
        if trained:
            self.sets["trained"] = probe_items(task, tok, trained[:cfg.n], seed)
        self.choose = probe_items(task, tok, choose[:cfg.n_choose], seed + 1)


def _last_mask_hooks(hook: str, fn):
    """Hooks applying `fn` at each sequence's last token (the answer prefix) of a batch."""
    def hooks_for(start, valid):
        m = torch.zeros(valid.shape, dtype=torch.bool)
        m[torch.arange(len(valid)), valid.sum(1) - 1] = True
        return [(hook, lambda x, hook: torch.where(m[..., None].to(x.device), fn(x, hook), x))]
    return hooks_for


def evaluate_sets(model, probe: Probe, hooks_for=None) -> dict:
    from experiments.probe_items import item_metrics
    from features.patching import last_logits

    return {name: item_metrics(last_logits(model, items.ids, hooks_for), items) for name, items in probe.sets.items()}


def patching_table(base, ft, probe: Probe, n_layers: int, roles: list[str]) -> dict:
    """metrics[direction][f"{component}@{layer}"][role][set]: direction base->variant (the
    variant run with the base's activation) and variant->base."""
    from experiments.probe_items import item_metrics
    from features.patching import patched_last_logits

    out = {}
    for direction, (receiver, donor) in {"base_to_variant": (ft, base), "variant_to_base": (base, ft)}.items():
        table = {}
        for comp in COMPONENTS:
            for layer in range(n_layers):
                hook = f"blocks.{layer}.hook_{comp}"
                table[f"{comp}@{layer}"] = {
                    role: {name: item_metrics(patched_last_logits(receiver, donor, items.ids, hook,
                                                                  items.role_masks(role)), items)
                           for name, items in probe.sets.items()} for role in roles}
        out[direction] = table
    return out


def _top(values: torch.Tensor, n: int, **extra) -> list[dict]:
    order = values.argsort(descending=True)[:n]
    return [{"latent": int(i), "value": float(values[i]), **{k: float(v[i]) for k, v in extra.items()}} for i in order]


def run_features(run: Path, models: list[str], cfg: ElicitConfig, hook: str, task, seed: int, device: str,
                 out: Path, log=print) -> None:
    """Write features/<model>.json for every model (ReasonScore), and for each variant of
    `cfg.variants` the latent shift, decoder matching and patching tables."""
    import time

    from activations.models import load_bridge
    from transformers import AutoTokenizer

    from features.latent_stats import decoder_matching, latent_shift, position_activations
    from features.reason_score import reason_scores
    from sae.load import load_sae_folder

    tok = AutoTokenizer.from_pretrained(run / "models" / "base")
    base = load_bridge(str(run / "models" / "base"), device)
    base_sae = load_sae_folder(run / "saes" / "base", device)
    for name in models:
        t0 = time.perf_counter()
        sae = load_sae_folder(run / "saes" / name, device)
        rs = reason_scores(sae, run / "activations" / name, hook, cfg.reason_score)
        record = {"model": name, "hook": hook, "sae": f"saes/{name}",
                  "reason_score": {"config": cfg.reason_score.__dict__, "groups": rs["groups"],
                                   "n_reasoning": rs["n_reasoning"], "n_other": rs["n_other"],
                                   "top": _top(rs["score"], cfg.top, mu_reasoning=rs["mu_reasoning"],
                                               mu_other=rs["mu_other"]),
                                   "all": [round(float(v), 6) for v in rs["score"]]}}
        if name in cfg.variants:
            ft = load_bridge(str(run / "models" / name), device)
            probe = Probe(run, name, task, tok, cfg, seed)
            ch = probe.choose
            acts = [position_activations(m, ch.ids, ch.role_masks("last"), hook) for m in (base, ft)]
            sh = latent_shift(base_sae, *acts)
            match = decoder_matching(base_sae, sae)
            record["latent_shift"] = {"read_by": "saes/base", "positions": "last (answer prefix)", "n": len(ch),
                                      "grown": _top(sh["shift"], cfg.top, mean_base=sh["mean_base"],
                                                    mean_finetuned=sh["mean_finetuned"]),
                                      "shrunk": _top(-sh["shift"], cfg.top, mean_base=sh["mean_base"],
                                                     mean_finetuned=sh["mean_finetuned"]),
                                      "shift": [round(float(v), 6) for v in sh["shift"]],
                                      "freq_finetuned": [round(float(v), 6) for v in sh["freq_finetuned"]]}
            record["decoder_matching"] = {
                "median_cosine": float(match["cosine"].median()), "same_index_median_cosine":
                float(match["same_index_cosine"].median()),
                "reason_latents_of_base": [{"latent": t["latent"], "match": int(match["match"][t["latent"]]),
                                            "cosine": float(match["cosine"][t["latent"]])}
                                           for t in _top(reason_scores(base_sae, run / "activations" / "base", hook,
                                                                       cfg.reason_score)["score"], cfg.top)]}
            record["behaviour"] = {"base": evaluate_sets(base, probe), "variant": evaluate_sets(ft, probe)}
            record["patching"] = patching_table(base, ft, probe, base.cfg.n_layers, cfg.patch_roles)
        (out / f"{name}.json").write_text(json.dumps(record, indent=1))
        log(f"  features {name}: {time.perf_counter() - t0:.1f} s")


def run_steer(run: Path, cfg: ElicitConfig, hook: str, task, seed: int, device: str, out: Path, log=print) -> None:
    """Write steering/<variant>.json for each variant of `cfg.variants` and
    steering/base-validation.json."""
    import time

    from transformers import AutoTokenizer

    from activations.models import load_bridge
    from experiments.probe_items import item_metrics
    from features.latent_stats import matched_random_latents, position_activations, random_direction_like
    from features.patching import last_logits, patched_last_logits
    from features.steer import ablate_latents, add_direction, check_hook, mean_difference
    from sae.load import load_sae_folder

    tok = AutoTokenizer.from_pretrained(run / "models" / "base")
    base = load_bridge(str(run / "models" / "base"), device)
    sae = load_sae_folder(run / "saes" / "base", device)
    check_hook(base, hook, sae)
    for v in cfg.variants:
        t0 = time.perf_counter()
        feats = json.loads((run / "features" / f"{v}.json").read_text())
        ft = load_bridge(str(run / "models" / v), device)
        probe = Probe(run, v, task, tok, cfg, seed)
        ref = {"base": evaluate_sets(base, probe), "variant": evaluate_sets(ft, probe)}
        shift = torch.tensor(feats["latent_shift"]["shift"])
        freq = torch.tensor(feats["latent_shift"]["freq_finetuned"])
        grown = shift.argsort(descending=True)
        ch = probe.choose
        acts = [position_activations(m, ch.ids, ch.role_masks("last"), hook) for m in (base, ft)]
        vec = mean_difference(acts[0][:50], acts[1][:50])  # Azizi et al. 2025: 50 pairs

        def steered(fn) -> dict:
            return evaluate_sets(ft, probe, _last_mask_hooks(hook, fn))

        sweeps = {"ablate_grown_latents": [], "ablate_random_latents": [], "mean_difference": [],
                  "random_direction": []}
        for n in cfg.latent_counts:
            chosen = grown[:n].tolist()
            control = matched_random_latents(freq, chosen, seed + n)
            sweeps["ablate_grown_latents"].append({"strength": n, "latents": chosen,
                                                   "metrics": steered(ablate_latents(sae, chosen))})
            sweeps["ablate_random_latents"].append({"strength": n, "latents": control,
                                                    "metrics": steered(ablate_latents(sae, control))})
        rand = random_direction_like(vec, seed)
        for a in cfg.alphas:
            sweeps["mean_difference"].append({"strength": a, "metrics": steered(add_direction(vec, a))})
            sweeps["random_direction"].append({"strength": a, "metrics": steered(add_direction(rand, a))})
        single = {"base_sae_reconstruction": steered(lambda x, hook: sae.decode(sae.encode(x)).to(x.dtype)),
                  "patching_oracle": {name: item_metrics(patched_last_logits(ft, base, items.ids, hook,
                                                                             items.role_masks("last")), items)
                                      for name, items in probe.sets.items()}}
        for entries in sweeps.values():
            for e in entries:
                e["gap_recovered"] = _gaps(e["metrics"], ref)
        for name, m in single.items():
            single[name] = {"metrics": m, "gap_recovered": _gaps(m, ref)}
        record = {"variant": v, "hook": hook, "positions": "last (answer prefix)", "sae": "saes/base",
                  "reference": ref, "sweeps": sweeps, "single": single,
                  "mean_difference_norm": float(vec.norm())}
        (out / f"{v}.json").write_text(json.dumps(record, indent=1))
        best = max(sweeps["ablate_grown_latents"], key=lambda e: e["metrics"]["heldout"]["follow"]["value"])
        log(f"  steer {v}: follow held-out {ref['variant']['heldout']['follow']['value']:.2f} -> "
            f"{best['metrics']['heldout']['follow']['value']:.2f} (ablating {best['strength']} grown latents; "
            f"oracle {single['patching_oracle']['metrics']['heldout']['follow']['value']:.2f}) "
            f"({time.perf_counter() - t0:.1f} s)")
    _validate_in_base(run, base, sae, cfg, hook, task, tok, seed, out, log)


def _gaps(m: dict, ref: dict) -> dict:
    return {s: {metric: gap_recovered(m[s][metric], ref["base"][s][metric], ref["variant"][s][metric])
                for metric in ("accuracy", "follow")} for s in m}


def _validate_in_base(run: Path, base, sae, cfg: ElicitConfig, hook: str, task, tok, seed: int, out: Path, log) -> None:
    """Ablating the base's top ReasonScore latents at every position should hurt its
    CoT-dependent answers (follow on corrupted CoTs, accuracy) more than random latents."""
    from features.latent_stats import matched_random_latents, position_activations
    from features.steer import ablate_latents

    feats = json.loads((run / "features" / "base.json").read_text())
    score = torch.tensor(feats["reason_score"]["all"])
    order = score.argsort(descending=True)
    probe = Probe(run, "base", task, tok, cfg, seed)
    acts = position_activations(base, probe.choose.ids, probe.choose.role_masks("all"), hook)
    freq = (sae.encode(acts.to(sae.W_enc.device)) > 0).float().mean(0).cpu()
    rows = []
    for n in cfg.validation_counts:
        top = order[:n].tolist()
        rnd = matched_random_latents(freq, top, seed + 100 + n)
        everywhere = lambda fn: (lambda start, valid: [(hook, fn)])  # noqa: E731
        rows.append({"n": n, "reason_latents": top, "random_latents": rnd,
                     "ablate_reason": evaluate_sets(base, probe, everywhere(ablate_latents(sae, top))),
                     "ablate_random": evaluate_sets(base, probe, everywhere(ablate_latents(sae, rnd)))})
    record = {"model": "base", "hook": hook, "positions": "all", "clean": evaluate_sets(base, probe), "rows": rows}
    (out / "base-validation.json").write_text(json.dumps(record, indent=1))
    last = rows[-1]
    log(f"  validation in base: ablating {last['n']} top ReasonScore latents -> accuracy "
        f"{last['ablate_reason']['heldout']['accuracy']['value']:.2f}, follow "
        f"{last['ablate_reason']['heldout']['follow']['value']:.2f}; {last['n']} random -> "
        f"{last['ablate_random']['heldout']['accuracy']['value']:.2f}, "
        f"{last['ablate_random']['heldout']['follow']['value']:.2f}")
