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
  - with a crosscoder of base and variant: its top ReasonScore latents with their relative
    decoder norm, class and Latent Scaling ratios (do the reasoning latents survive?)
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

import numpy as np
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
    probe_top: int = 16
    """Latents in the sparse value probe (against a dense probe on the raw activation)."""
    causal_candidates: int = 16
    """Top latents by attribution (first-order effect) checked by exact ablation."""
    patch_roles: list[str] = field(default_factory=lambda: ["question", "step", "last"])
    """Position roles patched (question, step, answer, last = the answer-prefix token, all)."""
    latent_counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128])
    """Numbers of most-grown latents ablated (the steering strengths of that intervention)."""
    alphas: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    """Scales of the difference-of-means vector."""
    clamp_latents: int = 8
    """How many of the base's top ReasonScore latents are clamped."""
    clamp_strengths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    """Clamp values as multiples of each latent's largest activation at the answer position."""
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
        from experiments.probe_items import extra_items

        self.extra = extra_items(task, tok, held, distinct_problems(task, cfg.n, cfg.k, seed + 1000, unanswerable=True),
                                 distinct_problems(task, cfg.n, cfg.k + 1, seed + 1000), seed)


def _metrics(logits_of, probe: Probe, sets: dict | None) -> dict:
    from experiments.probe_items import extra_metrics, item_metrics

    out = {name: item_metrics(logits_of(items.ids), items) for name, items in (sets or probe.sets).items()}
    if sets is None:
        out["heldout"] |= extra_metrics(lambda ids: logits_of(ids).argmax(-1).numpy(), probe.extra)
    return out


def evaluate_sets(model, probe: Probe, hooks_for=None, sets: dict | None = None) -> dict:
    """Probe metrics per set (default: the evaluation sets, held-out and trained; the held-out
    set also gets AOC, abstention recall and out-of-distribution accuracy)."""
    from features.patching import last_logits

    return _metrics(lambda ids: last_logits(model, ids, hooks_for), probe, sets)


class ProbeRunner:
    """`evaluate_sets` for many answer-position interventions on one model: every item list
    of the probe gets a `LastTokenRunner` (its prefix runs once), so each intervention costs
    one position per item."""

    def __init__(self, model, probe: Probe):
        from features.patching import LastTokenRunner

        self.probe = probe
        lists = [items.ids for items in probe.sets.values()] + [
            probe.choose.ids, probe.extra.truncated, probe.extra.unanswerable, probe.extra.ood.ids]
        self.runners = {id(ids): LastTokenRunner(model, ids) for ids in lists}

    def evaluate(self, fwd_hooks=(), sets: dict | None = None) -> dict:
        """Metrics as `evaluate_sets`, with `fwd_hooks` applied at the answer prefix only."""
        return _metrics(lambda ids: self.runners[id(ids)].logits(fwd_hooks), self.probe, sets)


def patching_table(base, ft, probe: Probe, n_layers: int, roles: list[str]) -> dict:
    """metrics[direction][f"{component}@{layer}"][role][set]: direction base->variant (the
    variant run with the base's activation) and variant->base."""
    from experiments.probe_items import item_metrics
    from features.patching import patching_sweep

    sites = {f"{comp}@{layer}": f"blocks.{layer}.hook_{comp}" for comp in COMPONENTS for layer in range(n_layers)}
    out = {}
    for direction, (receiver, donor) in {"base_to_variant": (ft, base), "variant_to_base": (base, ft)}.items():
        table = {site: {role: {} for role in roles} for site in sites}
        for name, items in probe.sets.items():
            logits = patching_sweep(receiver, donor, items.ids, list(sites.values()),
                                    {role: items.role_masks(role) for role in roles})
            for site, hook in sites.items():
                for role in roles:
                    table[site][role][name] = item_metrics(logits[(hook, role)], items)
        out[direction] = table
    return out


def _sig(x) -> float:
    """6 significant digits (not decimals: attributions are ~1e-8 and must keep their order)."""
    return float(f"{float(x):.6g}")


def _top(values: torch.Tensor, n: int, **extra) -> list[dict]:
    order = values.argsort(descending=True)[:n]
    return [{"latent": int(i), "value": float(values[i]), **{k: float(v[i]) for k, v in extra.items()}} for i in order]


def _value_probes(sae, cache_path: Path, hook: str, cfg: ElicitConfig, seed: int) -> dict:
    """Latents that encode a step's value where the model must compute it (the `=` of each
    step, before the value is written), and sparse vs dense probe accuracy there."""
    from activations.cache import open_cache
    from experiments.tasks import ROLES, SLOTS
    from features.probes import value_probes

    with open_cache(cache_path) as c:
        rows = (c.column("role") == ROLES.index("step")) & (c.column("slot") == SLOTS.index("eq")) & (
            c.column("value") >= 0)
        y = c.column("value")[rows]
        acts = c.activations(hook)[torch.from_numpy(rows)]
    with torch.no_grad():
        feats = sae.encode(acts.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
    vp = value_probes(feats, acts, y, cfg.probe_top, seed)
    return {"positions": "the '=' of every CoT step (value not yet written)", "n": int(rows.sum()),
            "auroc": [_sig(a) for a in vp["auroc"]], "detects": vp["detects"].tolist(),
            "top": [{"latent": int(i), "auroc": float(vp["auroc"][i]), "value": int(vp["detects"][i])}
                    for i in vp["top"]],
            "sparse_probe": vp["sparse_probe"] | {"latents": cfg.probe_top}, "dense_probe": vp["dense_probe"]}


def _chosen_by_role(sae, run: Path, variant: str, hook: str, latents: list[int]) -> dict:
    """Mean activation of the chosen latents by token role in the base and in the variant,
    both read through the base's SAE, on the cached token set (same tokens for both)."""
    from experiments.tasks import ROLES
    from features.latent_stats import group_means

    latents = list(dict.fromkeys(latents))
    out = {"latents": latents, "roles": list(ROLES[:3])}
    for key, model in (("base", "base"), ("variant", variant)):
        g = group_means(sae, run / "activations" / model, hook, "role", batch_size=8192)
        rows = {v: m for v, m in zip(g["values"], g["mean"])}
        out[key] = [[rows[k][i] for i in latents] for k in range(3)]  # (role, latent)
    return out


def _causal(model, sae, hook: str, items, cfg: ElicitConfig) -> dict:
    """Per site (CoT-step positions; the answer-prefix position): attribution for every latent,
    exact ablation for the top candidates; target = the answer the CoT implies."""
    from features.causal import ablation_effect, attribution

    out = {}
    for site, role in (("steps", "step"), ("answer_position", "last")):
        masks = items.role_masks(role)
        attr = attribution(model, sae, hook, items.ids, masks, items.implied)
        cand = attr.argsort()[:cfg.causal_candidates].tolist()  # most negative: ablating hurts most
        exact = ablation_effect(model, sae, hook, items.ids, masks, items.implied, cand)
        out[site] = {"attribution": [_sig(a) for a in attr],
                     "exact": [{"latent": i, "delta_logp": d, "attribution": float(attr[i])}
                               for i, d in sorted(exact.items(), key=lambda kv: kv[1])]}
    return out


def _crosscoder_reasoning(run: Path, variant: str, hook: str, cfg: ElicitConfig, device: str) -> dict | None:
    """Do the reasoning latents survive fine-tuning? The crosscoder's top ReasonScore latents
    (scored on the base's tokens, reading both models) with their relative decoder norm r,
    class and Latent Scaling ratios from the sae stage's diff.json; None without a crosscoder."""
    from features.reason_score import crosscoder_reason_scores
    from sae.crosscoder import load_crosscoder

    folder = run / "saes" / f"crosscoder-{variant}"
    if not (folder / "diff.json").exists():
        return None
    cc = load_crosscoder(folder, device)
    rs = crosscoder_reason_scores(cc, run / "activations" / "base", run / "activations" / variant, hook,
                                  cfg.reason_score)
    table = json.loads((folder / "diff.json").read_text())
    diff = {d["latent"]: d for d in table["latents"]}
    top = [t | {k: diff[t["latent"]][k] for k in ("r", "class", "rate", "nu_eps", "nu_rec")}
           for t in _top(rs["score"], cfg.top)]
    classes = [t["class"] for t in top]
    return {"crosscoder": f"saes/crosscoder-{variant}", "top": top,
            "classes_of_top": {c: classes.count(c) for c in ("base_only", "shared", "finetuned_only", "dead")},
            "median_r_of_top": float(np.median([t["r"] for t in top])),
            # the base rates the top latents are to be read against
            "classes_of_all": table["counts"],
            "median_r_of_alive": float(np.median([d["r"] for d in table["latents"] if d["class"] != "dead"])),
            "all": [_sig(v) for v in rs["score"]]}


def _ranked_table(record: dict, top: int) -> dict:
    """Every score per latent for the union of each score's top latents, and the chosen
    reasoning latents (top ReasonScore), value latents (top AUROC) and causal latents (most
    harmful exact ablation on CoT steps)."""
    rs = record["reason_score"]["all"]
    au = record["value_probes"]["auroc"]
    causal = record.get("causal", {})
    exact = {site: {e["latent"]: e["delta_logp"] for e in c["exact"]} for site, c in causal.items()}
    chosen = {"reasoning": [t["latent"] for t in record["reason_score"]["top"]],
              "value": [t["latent"] for t in record["value_probes"]["top"]],
              "causal": [e["latent"] for e in causal.get("steps", {}).get("exact", []) if e["delta_logp"] < 0]}
    ids = sorted(set().union(*chosen.values()), key=lambda i: -rs[i])
    rows = [{"latent": i, "reason_score": rs[i], "value_auroc": au[i],
             "value": record["value_probes"]["detects"][i],
             **{f"attribution_{s}": c["attribution"][i] for s, c in causal.items()},
             **{f"ablation_{s}": e.get(i) for s, e in exact.items()}} for i in ids]
    return {"chosen": chosen, "rows": rows}


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
        if name == "base":  # the base's scores are reused for every variant's decoder matching
            base_score = rs["score"]
        record = {"model": name, "hook": hook, "sae": f"saes/{name}",
                  "reason_score": {"config": cfg.reason_score.__dict__, "groups": rs["groups"],
                                   "n_reasoning": rs["n_reasoning"], "n_other": rs["n_other"],
                                   "top": _top(rs["score"], cfg.top, mu_reasoning=rs["mu_reasoning"],
                                               mu_other=rs["mu_other"]),
                                   "all": [_sig(v) for v in rs["score"]]}}
        record["value_probes"] = _value_probes(sae, run / "activations" / name, hook, cfg, seed)
        if name == "base" or name in cfg.variants:
            model = base if name == "base" else load_bridge(str(run / "models" / name), device)
            probe = Probe(run, name, task, tok, cfg, seed)  # built once, reused below for variants
            record["causal"] = _causal(model, sae, hook, probe.choose, cfg)
        record["table"] = _ranked_table(record, cfg.top)
        if name in cfg.variants:
            ft = model  # loaded, and its probe items built, for the causal scores above
            ch = probe.choose
            acts = [position_activations(m, ch.ids, ch.role_masks("last"), hook) for m in (base, ft)]
            sh = latent_shift(base_sae, *acts)
            match = decoder_matching(base_sae, sae)
            record["latent_shift"] = {"read_by": "saes/base", "positions": "last (answer prefix)", "n": len(ch),
                                      "grown": _top(sh["shift"], cfg.top, mean_base=sh["mean_base"],
                                                    mean_finetuned=sh["mean_finetuned"]),
                                      "shrunk": _top(-sh["shift"], cfg.top, mean_base=sh["mean_base"],
                                                     mean_finetuned=sh["mean_finetuned"]),
                                      "shift": [_sig(v) for v in sh["shift"]],
                                      "freq_finetuned": [_sig(v) for v in sh["freq_finetuned"]]}
            record["decoder_matching"] = {
                "median_cosine": float(match["cosine"].median()), "same_index_median_cosine":
                float(match["same_index_cosine"].median()),
                "reason_latents_of_base": [{"latent": t["latent"], "match": int(match["match"][t["latent"]]),
                                            "cosine": float(match["cosine"][t["latent"]])}
                                           for t in _top(base_score, cfg.top)]}
            cc = _crosscoder_reasoning(run, name, hook, cfg, device)
            if cc is not None:
                record["crosscoder_reason_score"] = cc
            record["chosen_by_role"] = _chosen_by_role(
                base_sae, run, name, hook, [t["latent"] for t in record["decoder_matching"]["reason_latents_of_base"][:8]]
                + [t["latent"] for t in record["latent_shift"]["grown"][:8]])
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
    from features.steer import ablate_latents, add_direction, check_hook, clamp_latents, mean_difference
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
        # the variant's own references through the same KV-cached path as every steered run,
        # so an intervention that does nothing recovers exactly 0 of the gap
        runner = ProbeRunner(ft, probe)
        ref = {"base": evaluate_sets(base, probe), "variant": runner.evaluate()}
        shift = torch.tensor(feats["latent_shift"]["shift"])
        freq = torch.tensor(feats["latent_shift"]["freq_finetuned"])
        grown = shift.argsort(descending=True)[:int((shift > 0).sum())]  # only latents that did grow
        counts = [n for n in cfg.latent_counts if n <= len(grown)]
        ch = probe.choose
        acts = [position_activations(m, ch.ids, ch.role_masks("last"), hook) for m in (base, ft)]
        vec = mean_difference(acts[0][:50], acts[1][:50])  # Azizi et al. 2025: 50 pairs

        choose_ref = {"base": evaluate_sets(base, probe, sets={"choose": ch}),
                      "variant": runner.evaluate(sets={"choose": ch})}

        def steered(fn) -> dict:
            """Metrics on the evaluation sets, and on the choice set (which picks the best strength)."""
            hooks = [(hook, fn)]  # the runner runs the answer prefix only: fn sees that position
            return runner.evaluate(hooks) | {"choose": runner.evaluate(hooks, {"choose": ch})["choose"]}

        sweeps = {"ablate_grown_latents": [], "ablate_random_latents": [], "mean_difference": [],
                  "random_direction": [], "clamp_reason_latents": [], "clamp_random_latents": []}
        # Galichin et al.'s clamp: the base's top ReasonScore latents set to strength x their
        # largest activation at the answer position (choice set), against random latents
        # matched in firing frequency clamped the same way
        reason = [t["latent"] for t in json.loads((run / "features" / "base.json").read_text())["reason_score"]["top"]
                  ][:cfg.clamp_latents]
        code_b = sae.encode(acts[0].to(sae.W_enc.device)).float().cpu()
        peak, base_freq = code_b.amax(0), (code_b > 0).float().mean(0)
        reason_control = matched_random_latents(base_freq, reason, seed + 7)
        for st in cfg.clamp_strengths:
            for name, lat in (("clamp_reason_latents", reason), ("clamp_random_latents", reason_control)):
                values = st * peak[lat].clamp_min(1e-3)  # a latent silent there is clamped to a small value
                sweeps[name].append({"strength": st, "latents": lat,
                                     "metrics": steered(clamp_latents(sae, lat, values))})
        for n in counts:
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
        full_ref = {m: ref[m] | choose_ref[m] for m in ref}
        for entries in sweeps.values():
            for e in entries:
                e["gap_recovered"] = _gaps(e["metrics"], full_ref)
        for name, m in single.items():
            single[name] = {"metrics": m, "gap_recovered": _gaps(m, ref)}
        record = {"variant": v, "hook": hook, "positions": "last (answer prefix)", "sae": "saes/base",
                  "reference": ref, "choose_reference": choose_ref, "sweeps": sweeps, "single": single,
                  "latents_grown": len(grown), "control_frequencies": {
                      "chosen": [float(freq[e["latents"]].mean()) for e in sweeps["ablate_grown_latents"]],
                      "control": [float(freq[e["latents"]].mean()) for e in sweeps["ablate_random_latents"]]},
                  "mean_difference_norm": float(vec.norm())}
        (out / f"{v}.json").write_text(json.dumps(record, indent=1))
        best = max(sweeps["ablate_grown_latents"], key=lambda e: e["metrics"]["heldout"]["follow"]["value"])
        log(f"  steer {v}: follow held-out {ref['variant']['heldout']['follow']['value']:.2f} -> "
            f"{best['metrics']['heldout']['follow']['value']:.2f} (ablating {best['strength']} grown latents; "
            f"oracle {single['patching_oracle']['metrics']['heldout']['follow']['value']:.2f}) "
            f"({time.perf_counter() - t0:.1f} s)")
    _validate_in_base(run, base, sae, cfg, hook, task, tok, seed, out, log)


GAP_METRICS = ("accuracy", "follow", "aoc", "abstention_recall", "ood_accuracy")


def _gaps(m: dict, ref: dict) -> dict:
    return {s: {metric: gap_recovered(m[s][metric], ref["base"][s][metric], ref["variant"][s][metric])
                for metric in GAP_METRICS if metric in m[s]} for s in m if s in ref["base"]}


def _validate_in_base(run: Path, base, sae, cfg: ElicitConfig, hook: str, task, tok, seed: int, out: Path, log) -> None:
    """Ablating the base's top ReasonScore latents at every position should hurt its
    CoT-dependent answers (follow on corrupted CoTs, accuracy) more than random latents. The
    positive control: as many latents carrying the most at CoT steps (mean activation x
    decoder norm there, on the choice set), which shows whether this measurement can detect
    an effect at all. (Not chosen by attribution: on a model this sure of its answer the
    gradient of log p is ~1e-8, and exactly 0 for most latents of a small model.)"""
    from features.latent_stats import matched_random_latents, position_activations
    from features.steer import ablate_latents

    feats = json.loads((run / "features" / "base.json").read_text())
    score = torch.tensor(feats["reason_score"]["all"])
    order = score.argsort(descending=True)
    probe = Probe(run, "base", task, tok, cfg, seed)
    acts = position_activations(base, probe.choose.ids, probe.choose.role_masks("all"), hook)
    freq = (sae.encode(acts.to(sae.W_enc.device)) > 0).float().mean(0).cpu()
    with torch.no_grad():
        steps = position_activations(base, probe.choose.ids, probe.choose.role_masks("step"), hook)
        mass = sae.encode(steps.to(sae.W_enc.device)).float().mean(0).cpu() * sae.W_dec.norm(dim=-1).float().cpu()
    carrying = mass.argsort(descending=True)
    rows = []
    for n in cfg.validation_counts:
        top = order[:n].tolist()
        rnd = matched_random_latents(freq, top, seed + 100 + n)
        everywhere = lambda fn: (lambda start, valid: [(hook, fn)])  # noqa: E731
        causal = carrying[:n].tolist()
        rows.append({"n": n, "reason_latents": top, "random_latents": rnd, "causal_latents": causal,
                     "ablate_reason": evaluate_sets(base, probe, everywhere(ablate_latents(sae, top))),
                     "ablate_random": evaluate_sets(base, probe, everywhere(ablate_latents(sae, rnd))),
                     "ablate_causal": evaluate_sets(base, probe, everywhere(ablate_latents(sae, causal)))})
    record = {"model": "base", "hook": hook, "positions": "all", "clean": evaluate_sets(base, probe), "rows": rows}
    (out / "base-validation.json").write_text(json.dumps(record, indent=1))
    last = rows[-1]
    lp = lambda m: m["heldout"]["logp_implied"]["value"]  # noqa: E731
    log(f"  validation in base: ablating {last['n']} top ReasonScore latents -> accuracy "
        f"{last['ablate_reason']['heldout']['accuracy']['value']:.2f}, log p(implied) {lp(record['clean']):.3f} -> "
        f"{lp(last['ablate_reason']):.3f}; {last['n']} random -> {lp(last['ablate_random']):.3f}; "
        f"{last['n']} carrying most at CoT steps -> {lp(last['ablate_causal']):.3f}, accuracy "
        f"{last['ablate_causal']['heldout']['accuracy']['value']:.2f}")
