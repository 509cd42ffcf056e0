"""The elicit stage: SAEs where the change lives, trained on a token set of their own, the
latent-patching ladder and the base-free interventions at each site, into elicit/.

    elicit/activations/<model>/       the training caches (train-split problems, every k:
                                      never the probe items), at every site
    elicit/saes/<model>/<site>/       an SAE per model and site (SAELens format; answer-prefix
                                      rows all kept, other rows subsampled: `SiteRows`)
    elicit/<variant>.json             per site: SAE quality, the patching oracle, the ladder,
                                      each base-free intervention with its null; the headline

Everything acts at the answer prefix (the position where patching localises the change),
through the variant's SAE of the site, measured on the probe sets of the features stage
(`experiments.elicit.probe.Probe`): held-out, the variant's trained problems, the choice set.

    ladder (Marks et al. 2024)   patch from the base only the N latents of largest
                                 attribution to log p(the CoT's answer) on the choice set's
                                 corrupted items; the error term alone; all + error (= the
                                 activation patching oracle, exactly)
    ablate_shortcut_latents      the N latents whose ablation most raises log p(the CoT's
                                 answer), by attribution on the choice set
    project_shortcut_subspace    the span of those N latents' decoder rows projected out
    clamp_value_latents          the N latents that vary most with the answer value set to
                                 their mean for the value the item's CoT implies (means of the
                                 variant's own gold-CoT rows of the training set: no base)
    clamp_value_latents_base_means   the same with the means of the base's rows (read by the
                                 variant's SAE), computed once from the training cache: a
                                 lookup table per answer value, no base forward pass at steering

No base forward pass happens at steering time in the last four. Each is tried at every size
of `counts`; the size is chosen on the choice set (largest follow gap recovered with choice
accuracy within `max_accuracy_drop` of the variant's); at that size its control is drawn
`null_draws` times on the held-out set: for the ablation and the projection the same
operation on random latents of matched firing frequency, for the clamps the same latents
clamped to the means of a wrong answer (the answers deranged): the value read off the CoT
is what they claim matters. The headline is the intervention and site chosen on the choice set.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from experiments.elicit.probe import Probe, ProbeRunner
from experiments.elicit.site_data import (SiteRows, explain_site, sae_quality, transcoder_hooks, transcoder_quality,
                                         value_means)
from experiments.elicit.sites_config import SitesConfig
from experiments.probe_items import item_metrics
from experiments.rundir import RunDir
from features.ladder import (ablation_attribution, clamp_per_item, code_gradient, patch_attribution, patch_error,
                             patch_latents, project_rows)
from features.latent_stats import matched_random_latents, position_activations
from features.patching import last_logits
from features.stats import gap_recovered, null_summary
from features.steer import ablate_latents

METRICS = ("follow", "accuracy")
"""The probe metrics each intervention records (with their gap recovered)."""
INTERVENTIONS = ("ablate_shortcut_latents", "project_shortcut_subspace", "clamp_value_latents",
                 "clamp_value_latents_base_means")
"""The base-free interventions, in the order of a record."""


def prompts_of_tokens(tok, ids: list[np.ndarray], answer_prefix: str) -> set[str]:
    """The question part ("Q:...=") of every tokenised training text."""
    out = set()
    for seq in ids:
        text = tok.decode(seq, skip_special_tokens=True).replace(" ", "")
        out.add(text.split("=", 1)[0] + "=" if "=" in text else text)
    return out


def check_disjoint(train_prompts: set[str], probe: Probe, tok) -> int:
    """Refuse a training set that shares a prompt with the held-out or choice probe items;
    returns how many probe prompts were checked."""
    probe_prompts = set()
    for items in (probe.sets["heldout"], probe.choose):
        probe_prompts |= prompts_of_tokens(tok, items.ids, "")
    shared = train_prompts & probe_prompts
    if shared:
        raise ValueError(f"the elicit training set shares {len(shared)} prompts with the probe items "
                         f"(e.g. {sorted(shared)[:3]}): it must come from the train split")
    return len(probe_prompts)


class Measure:
    """Probe metrics of the variant under an intervention at one site's answer prefix, with
    gap recovered against the base and the variant on the same items."""

    def __init__(self, runner: ProbeRunner, sets: dict, ref: dict, site: str):
        self.runner, self.sets, self.ref, self.site = runner, sets, ref, site

    def __call__(self, fn_of, sets=None) -> dict:
        """`fn_of(set name, start, n)` -> the hook function of items start..start+n-1."""
        out = {}
        for s in sets or self.sets:
            items = self.sets[s]
            logits = self.runner.runners[id(items.ids)].logits(
                hooks_for=lambda start, n, s=s: [(self.site, fn_of(s, start, n))])
            m = item_metrics(logits, items)
            out[s] = {k: _plain(m[k]) | {"gap_recovered": _plain(gap_recovered(
                m[k], self.ref["base"][s][k], self.ref["variant"][s][k]))} for k in METRICS}
        return out


def _plain(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "by_problem"}


def _gap(entry: dict, s: str, metric: str = "follow") -> float | None:
    return entry["metrics"][s][metric]["gap_recovered"]["value"]


def choose_size(entries: list[dict], ref: dict, max_drop: float) -> dict | None:
    """The entry of largest choice-set follow gap recovered among those whose choice-set
    accuracy stays within `max_drop` of the variant's (None if none is eligible)."""
    floor = ref["variant"]["choose"]["accuracy"]["value"] - max_drop
    ok = [e for e in entries if e["metrics"]["choose"]["accuracy"]["value"] >= floor
          and _gap(e, "choose") is not None]
    return max(ok, key=lambda e: _gap(e, "choose"), default=None)


def elicit_site(model, base, sae, site: str, probe: Probe, runner: ProbeRunner, ref: dict,
                means: dict[str, torch.Tensor], cfg: SitesConfig, seed: int) -> dict:
    """The record of one site: the oracle, the ladder and every base-free intervention."""
    sets = {"heldout": probe.sets["heldout"], "choose": probe.choose} | (
        {"trained": probe.sets["trained"]} if "trained" in probe.sets else {})
    measure = Measure(runner, sets, ref, site)
    donor = {s: position_activations(base, it.ids, it.role_masks("last"), site) for s, it in sets.items()}
    d_sae = sae.cfg.d_sae
    out = {"oracle": {"metrics": measure(lambda s, a, n: lambda x, hook: donor[s][a:a + n].reshape(x.shape).to(x.dtype))}}

    # attribution on the choice set's corrupted items: log p(the answer the CoT implies)
    ch = probe.choose
    corrupt = np.flatnonzero(ch.kind == 1)
    code, grad = code_gradient(model, sae, site, [ch.ids[i] for i in corrupt], ch.implied[corrupt])
    donor_code = sae.encode(donor["choose"][torch.from_numpy(corrupt)].float())
    by_patch = patch_attribution(grad, code, donor_code).argsort(descending=True)
    by_ablation = ablation_attribution(grad, code).argsort(descending=True)
    freq = (code > 0).float().mean(0)

    ladder = [{"n": n, "latents": by_patch[:n].tolist(), "metrics": measure(
        lambda s, a, b, n=n: patch_latents(sae, donor[s][a:a + b], by_patch[:n]))}
        for n in cfg.ladder_counts if n < d_sae]
    ladder.append({"n": d_sae, "metrics": measure(lambda s, a, b: patch_latents(sae, donor[s][a:a + b], None))})
    out["ladder"] = ladder
    out["error_only"] = {"metrics": measure(lambda s, a, b: patch_error(sae, donor[s][a:a + b]))}
    out["all_latents_and_error"] = {"metrics": measure(
        lambda s, a, b: patch_latents(sae, donor[s][a:a + b], None, error=True))}

    implied = {s: torch.as_tensor(it.implied) for s, it in sets.items()}

    def clamp(table: torch.Tensor, perm: torch.Tensor | None = None):
        """Clamp to the row of `table` of each item's implied answer (mapped through `perm`: the null)."""
        key = (lambda t: t) if perm is None else (lambda t: perm[t])
        return lambda lat: (lambda s, a, b: clamp_per_item(sae, lat, table[key(implied[s][a:a + b])][:, lat]))

    answers = torch.as_tensor(sorted(set().union(*(set(it.implied.tolist()) for it in sets.values()))))

    make = {
        "ablate_shortcut_latents": lambda lat: (lambda s, a, b: ablate_latents(sae, lat)),
        "project_shortcut_subspace": lambda lat: (lambda s, a, b, rows=_decoder_rows(sae, lat): project_rows(rows)),
        "clamp_value_latents": clamp(means["variant"]),
        "clamp_value_latents_base_means": clamp(means["base"]),
    }
    # the clamps' latents: those that vary most with the answer value (in the table they use)
    order = {"ablate_shortcut_latents": by_ablation, "project_shortcut_subspace": by_ablation,
             "clamp_value_latents": means["variant"].var(0).argsort(descending=True),
             "clamp_value_latents_base_means": means["base"].var(0).argsort(descending=True)}
    counts = [n for n in cfg.counts if n <= d_sae]
    for name in INTERVENTIONS:
        entries = [{"n": n, "latents": order[name][:n].tolist(), "metrics": measure(make[name](order[name][:n].tolist()))}
                   for n in counts]
        best = choose_size(entries, ref, cfg.max_accuracy_drop)
        rec = {"entries": entries, "chosen": None if best is None else best["n"]}
        if best is not None:
            draws = []
            for d in range(1, cfg.null_draws + 1):
                if name.startswith("clamp"):
                    # the same latents clamped to the means of a wrong answer (a derangement of the
                    # answers): does the value read off the CoT matter, or would any clamp do?
                    g = torch.Generator().manual_seed(seed + 1000 * d)
                    while True:
                        order_ = answers[torch.randperm(len(answers), generator=g)]
                        if not (order_ == answers).any():
                            break
                    perm = torch.arange(means["base"].shape[0])
                    perm[answers] = order_
                    fn = clamp(means["variant" if name == "clamp_value_latents" else "base"], perm)(best["latents"])
                else:  # the same operation on random latents of matched firing frequency
                    fn = make[name](matched_random_latents(freq, best["latents"], seed + 1000 * d + best["n"],
                                                           cfg.control_pool))
                draws.append(_gap({"metrics": measure(fn, sets=["heldout"])}, "heldout"))
            rec["null"] = null_summary(_gap(best, "heldout"), draws)
            rec["null_kind"] = "wrong answer's means" if name.startswith("clamp") else "matched random latents"
        out[name] = rec
    return out


def _decoder_rows(sae, latents: list[int]) -> torch.Tensor:
    return sae.W_dec[torch.as_tensor(latents)].detach().float()


def headline(sites: dict, ref: dict, max_drop: float) -> dict | None:
    """The base-free intervention and site chosen on the choice set (largest choice follow gap
    recovered at its chosen size), with its held-out and trained numbers and null."""
    best = None
    for site, rec in sites.items():
        for name in INTERVENTIONS:
            r = rec[name]
            if r["chosen"] is None:
                continue
            e = next(e for e in r["entries"] if e["n"] == r["chosen"])
            if best is None or _gap(e, "choose") > _gap(best[2], "choose"):
                best = (site, name, e, r["null"])
    if best is None:
        return None
    site, name, e, null = best
    m = e["metrics"]
    return {"site": site, "intervention": name, "n": e["n"], "follow_gap_recovered": m["heldout"]["follow"]["gap_recovered"],
            "heldout": {k: m["heldout"][k]["value"] for k in METRICS},
            "trained": {k: m["trained"][k]["value"] for k in METRICS} if "trained" in m else None,
            "null": null}


def elicit_variant(run: RunDir, v: str, base, task, tok, cfg: SitesConfig, features_cfg, hooks: list[str],
                   seed: int, device: str, log) -> dict:
    """elicit/<v>.json: every site of `hooks` for variant `v`."""
    from activations.models import load_bridge
    from sae.load import load_sae_folder

    ft = load_bridge(str(run.model(v)), device)
    probe = Probe(run, v, task, tok, features_cfg, seed)
    runner = ProbeRunner(ft, probe)
    sets = {"heldout": probe.sets["heldout"], "choose": probe.choose} | (
        {"trained": probe.sets["trained"]} if "trained" in probe.sets else {})
    ref = {"base": {s: item_metrics(last_logits(base, it.ids), it) for s, it in sets.items()},
           "variant": {s: item_metrics(runner.runners[id(it.ids)].logits(), it) for s, it in sets.items()}}
    rows = SiteRows(cfg.other_fraction)
    out = {"variant": v, "positions": "last (answer prefix)", "sites": {}, "quality": {},
           "reference": {m: {s: {k: _plain(ref[m][s][k]) for k in METRICS} for s in sets} for m in ref}}
    for site in hooks:
        t0 = time.perf_counter()
        sae = load_sae_folder(run.elicit_sae(v, site), device)
        out["quality"][site] = {m: sae_quality(load_sae_folder(run.elicit_sae(m, site), device),
                                               run.elicit_cache(m), site, SiteRows(cfg.other_fraction, heldout=True))
                                for m in (["base"] if cfg.train_base else []) + [v]}
        means = {k: value_means(sae, run.elicit_cache(m), site, rows, ft.cfg.d_vocab) for k, m in (("variant", v), ("base", "base"))}
        out["sites"][site] = elicit_site(ft, base, sae, site, probe, runner, ref, means, cfg, seed)
        out["sites"][site]["explanations"] = explain_site(sae, run.elicit_cache(v), site, tok)
        o = out["sites"][site]
        log(f"  elicit {v} {site}: oracle follow gap {_fmt(_gap(o['oracle'], 'heldout'))}, "
            + ", ".join(f"{n} {_fmt(_gap(next(e for e in o[n]['entries'] if e['n'] == o[n]['chosen']), 'heldout'))}"
                        f" (n={o[n]['chosen']})" for n in INTERVENTIONS if o[n]["chosen"] is not None)
            + f" ({time.perf_counter() - t0:.1f} s)")
    out["headline"] = headline(out["sites"], ref, cfg.max_accuracy_drop)
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:+.0%}"


def run_elicit(run: RunDir, cfg, log) -> None:
    """The whole stage: training caches, site SAEs, then elicit/<variant>.json for each variant."""
    from activations.atomic import write_json_atomic
    from activations.cache import write_cache
    from activations.cache.writer import expand_hooks
    from experiments.cache_set import token_set
    from experiments.organisms.stages.cache import organism_provenance
    from experiments.organisms.stages.load import load_organism
    from experiments.tasks import ArithmeticTask
    from sae.train import train_sae
    from transformers import AutoTokenizer
    import dataclasses
    import warnings

    sc: SitesConfig = cfg.elicit
    task, tok = ArithmeticTask(cfg.task), AutoTokenizer.from_pretrained(run.model("base"))
    hooks = expand_hooks(sc.sites, cfg.organisms.model.n_layers)
    cached = list(dict.fromkeys(hooks + transcoder_hooks(sc.transcoders)))
    t0 = time.perf_counter()
    ids, labels = token_set(task, tok, sc.tokens, cfg.seed + 4000, mark_answer_prefix=True)
    n_tokens = sum(len(s) for s in ids)
    probe_check = [Probe(run, v, task, tok, cfg.features, cfg.seed) for v in sc.variants[:1]]
    for p in probe_check:
        check_disjoint(prompts_of_tokens(tok, ids, task.answer_prefix), p, tok)
    log(f"  elicit: training set {len(ids)} sequences, {n_tokens} tokens ({time.perf_counter() - t0:.1f} s)")
    models = ["base"] + list(sc.variants)
    write = dataclasses.replace(sc.write, hooks=cached)
    for m in models:
        t0 = time.perf_counter()
        model = load_organism(run, cfg, m)
        meta = write_cache(model, ids, labels, run.elicit_cache(m), write,
                           organism_provenance(run, cfg, m, model) | {"tokens": dataclasses.asdict(sc.tokens)},
                           overwrite=True)
        log(f"  elicit cache {m}: {meta['n_rows']} rows x {len(cached)} hooks in {time.perf_counter() - t0:.1f} s")
    # Under torchrun every rank runs the stage: write_cache splits each model's shards between
    # the ranks (and waits for all of them); the SAEs and the interventions are rank 0's.
    from experiments.engine.distributed import dist_barrier, dist_rank_world

    dist_barrier()
    if dist_rank_world()[0] != 0:
        return
    tcfg = dataclasses.replace(sc.sae, device=cfg.device, seed=cfg.seed)
    for m in models if sc.train_base else models[1:]:
        for h in hooks:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                met = train_sae(run.elicit_cache(m), h, tcfg, run.elicit_sae(m, h), where=SiteRows(sc.other_fraction),
                                overwrite=True)
            log(f"  elicit sae {m} {h}: L0 {met['l0']:.1f}, train FVU {met['train_fvu']:.3f} "
                f"({time.perf_counter() - t0:.1f} s)")
    from sae.transcoder import load_transcoder, train_transcoder

    transcoders = {}
    for layer in sc.transcoders:
        for m in models:
            t0 = time.perf_counter()
            out = run.elicit_sae(m, f"transcoder-{layer}")
            met = train_transcoder(run.elicit_cache(m), f"blocks.{layer}.hook_resid_mid", f"blocks.{layer}.hook_mlp_out",
                                   dataclasses.replace(sc.transcoder, device=cfg.device, seed=cfg.seed), out,
                                   where=SiteRows(sc.other_fraction), overwrite=True)
            q = transcoder_quality(load_transcoder(out, cfg.device), run.elicit_cache(m), layer,
                                   SiteRows(sc.other_fraction, heldout=True))
            transcoders.setdefault(f"transcoder@{layer}", {})[m] = q | {"train_fvu": met["fvu"]}
            log(f"  elicit transcoder {m} MLP {layer}: held-out answer-prefix FVU {q['fvu']:.3f}, L0 {q['l0']:.1f} "
                f"({time.perf_counter() - t0:.1f} s)")
    base = load_organism(run, cfg, "base")
    for v in sc.variants:
        rec = elicit_variant(run, v, base, task, tok, sc, cfg.features, hooks, cfg.seed, cfg.device, log)
        rec["transcoders"] = {k: {m: q for m, q in t.items() if m in ("base", v)} for k, t in transcoders.items()}
        rec |= {"training_set": {"sequences": len(ids), "tokens": n_tokens, "config": dataclasses.asdict(sc.tokens)},
                "sae_config": dataclasses.asdict(tcfg)}
        write_json_atomic(run.elicit(v), rec)
