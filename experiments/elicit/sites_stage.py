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

from experiments.elicit.interventions import add_null, chosen_entry, gap, random_latent_null, sweep
from experiments.elicit.probe import Probe, ProbeRunner
from experiments.elicit.site_data import (SiteRows, check_disjoint, explain_site, prompts_of_tokens, sae_quality, transcoder_hooks, transcoder_quality,
                                         value_means)
from experiments.elicit.sites_config import SitesConfig
from experiments.probe_items import item_metrics
from experiments.rundir import RunDir
from features.ladder import (ablation_attribution, clamp_per_item, code_gradient, patch_attribution, patch_error,
                             patch_latents, project_rows)
from features.latent_stats import position_activations
from features.patching import last_logits
from features.stats import gap_recovered
from features.steer import ablate_latents

METRICS = ("follow", "accuracy")
"""The probe metrics each intervention records (with their gap recovered)."""
INTERVENTIONS = ("ablate_shortcut_latents", "project_shortcut_subspace", "clamp_value_latents",
                 "clamp_value_latents_base_means")
"""The base-free interventions, in the order of a record."""


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
                hooks_for=lambda start, n, s=s: _hooks(self.site, fn_of(s, start, n)))
            m = item_metrics(logits, items)
            out[s] = {k: _plain(m[k]) | {"gap_recovered": _plain(gap_recovered(
                m[k], self.ref["base"][s][k], self.ref["variant"][s][k]))} for k in METRICS}
        return out


def _hooks(site: str, fn) -> list:
    """An intervention's hooks: one function at the measured site, or (hook, function) pairs."""
    return list(fn) if isinstance(fn, list) else [(site, fn)]


def _plain(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "by_problem"}


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
        # a matched random null needs as many unused latents as chosen ones: at most half of them
        sizes = counts if name.startswith("clamp") else [n for n in counts if n <= d_sae // 2]
        rec = sweep(make[name], order[name], sizes, measure, ref, cfg.max_accuracy_drop)
        if name.startswith("clamp"):
            table = means["variant" if name == "clamp_value_latents" else "base"]
            lat = (chosen_entry(rec) or {}).get("latents")
            draw = lambda d, table=table, lat=lat: clamp(table, derangement(answers, table.shape[0], seed + 1000 * d))(lat)
            add_null(rec, measure, draw, cfg.null_draws, "wrong answer's means")
        else:
            add_null(rec, measure, random_latent_null(make[name], rec, freq, seed, cfg.control_pool), cfg.null_draws,
                     "matched random latents")
        out[name] = rec
    return out


def derangement(answers: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """(size,) a map of answer tokens sending each of `answers` to another of them (a
    derangement, seeded), identity elsewhere: the clamps' null reads a wrong answer's means
    (does the value read off the CoT matter, or would any clamp do?)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = answers[torch.randperm(len(answers), generator=g)]
        if not (order == answers).any():
            break
    perm = torch.arange(size)
    perm[answers] = order
    return perm


def _decoder_rows(sae, latents: list[int]) -> torch.Tensor:
    return sae.W_dec[torch.as_tensor(latents)].detach().float()


def headline(candidates: list[tuple[str, str, dict]]) -> dict | None:
    """The base-free intervention chosen on the choice set among `candidates` ((site or
    dictionary, intervention, its record) of every site, crosscoder and transcoder): the
    largest choice follow gap recovered at its chosen size, with its held-out and trained
    numbers and null."""
    best = None
    for site, name, r in candidates:
        e = chosen_entry(r) if r.get("chosen") is not None else None
        if e is not None and (best is None or gap(e, "choose") > gap(best[2], "choose")):
            best = (site, name, e, r["null"])
    if best is None:
        return None
    site, name, e, null = best
    m = e["metrics"]
    return {"site": site, "intervention": name, "n": e["n"], "follow_gap_recovered": m["heldout"]["follow"]["gap_recovered"],
            "heldout": {k: m["heldout"][k]["value"] for k in METRICS},
            "trained": {k: m["trained"][k]["value"] for k in METRICS} if "trained" in m else None,
            "null": null}


def candidates(out: dict) -> list[tuple[str, str, dict]]:
    """Every base-free intervention of a variant's record, labelled by where it acts."""
    c = [(site, name, rec[name]) for site, rec in out["sites"].items() for name in INTERVENTIONS]
    c += [(f"crosscoder@{site}", "ablate_finetuned_latents", rec["ablate_finetuned_latents"])
          for site, rec in out.get("crosscoders", {}).items()]
    c += [(k, "ablate_shortcut_latents", rec["ablate_shortcut_latents"]) for k, rec in out.get("transcoder_sites", {}).items()]
    return c


def elicit_variant(run: RunDir, v: str, base, task, tok, cfg: SitesConfig, features_cfg, hooks: list[str],
                   seed: int, device: str, log, crosscoder_hooks: list[str] = ()) -> dict:
    """elicit/<v>.json: every site of `hooks` for variant `v`, and its crosscoders (at
    `crosscoder_hooks`) and transcoders."""
    from activations.models import load_bridge
    from experiments.elicit.dictionaries import crosscoder_site, crosscoder_summary, transcoder_site
    from sae.load import load_sae_folder
    from sae.transcoder import load_transcoder

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
        log(f"  elicit {v} {site}: oracle follow gap {_fmt(gap(o['oracle'], 'heldout'))}, "
            + ", ".join(f"{n} {_fmt(gap(next(e for e in o[n]['entries'] if e['n'] == o[n]['chosen']), 'heldout'))}"
                        f" (n={o[n]['chosen']})" for n in INTERVENTIONS if o[n]["chosen"] is not None)
            + f" ({time.perf_counter() - t0:.1f} s)")
    for site in crosscoder_hooks:
        t0 = time.perf_counter()
        rec, view = crosscoder_summary(run, v, site, cfg, tok)
        rec["ablate_finetuned_latents"] = crosscoder_site(ft, view, rec, site, probe, Measure(runner, sets, ref, site),
                                                         ref, cfg, seed)
        out.setdefault("crosscoders", {})[site] = rec
        r = rec["ablate_finetuned_latents"]
        log(f"  elicit crosscoder {v} {site}: dead {rec['dead_fraction']:.1%} (answer prefix "
            f"{rec['dead_at_answer_prefix']:.1%}), {rec['counts']}, ablate_finetuned_latents "
            f"{_fmt(gap(chosen_entry(r), 'heldout')) if r['chosen'] else 'none eligible'} ({time.perf_counter() - t0:.1f} s)")
    for layer in cfg.transcoders:
        t0 = time.perf_counter()
        path = run.elicit_sae(v, f"transcoder-{layer}")
        tc = load_transcoder(path, device)
        r = transcoder_site(ft, tc, layer, probe, Measure(runner, sets, ref, f"blocks.{layer}.hook_mlp_out"), ref, cfg,
                            seed)
        out.setdefault("transcoder_sites", {})[f"transcoder@{layer}"] = {
            "path": run.relative(path), "layer": layer, "ablate_shortcut_latents": r,
            "explanations": explain_site(tc, run.elicit_cache(v), f"blocks.{layer}.hook_resid_mid", tok)}
        log(f"  elicit transcoder {v} MLP {layer}: ablate_shortcut_latents "
            f"{_fmt(gap(chosen_entry(r), 'heldout')) if r['chosen'] else 'none eligible'} ({time.perf_counter() - t0:.1f} s)")
    out["headline"] = headline(candidates(out))
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
    cc_hooks = expand_hooks(sc.crosscoder_sites, cfg.organisms.model.n_layers) if sc.crosscoder_sites else []
    cached = list(dict.fromkeys(hooks + cc_hooks + transcoder_hooks(sc.transcoders)))
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

    from experiments.elicit.dictionaries import train_crosscoders

    train_crosscoders(run, sc, list(sc.variants), cc_hooks, cfg.device, cfg.seed, log)
    transcoders = {}
    for layer in sc.transcoders:
        for m in models if sc.train_base else models[1:]:
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
        rec = elicit_variant(run, v, base, task, tok, sc, cfg.features, hooks, cfg.seed, cfg.device, log, cc_hooks)
        rec["transcoders"] = {k: {m: q for m, q in t.items() if m in ("base", v)} for k, t in transcoders.items()}
        rec |= {"training_set": {"sequences": len(ids), "tokens": n_tokens, "config": dataclasses.asdict(sc.tokens)},
                "sae_config": dataclasses.asdict(tcfg)}
        write_json_atomic(run.elicit(v), rec)
