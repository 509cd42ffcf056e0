"""The steer stage of a pair run: clamp the steering SAE's top ReasonScore latents (and, as the
control, matched random latents) in each variant at each strength, into steering/<variant>.json.
Every rank runs it (generation is split)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.rundir import RunDir


def steer_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.steering(v) for v in cfg.models.variants]


def run_steer(run: RunDir, cfg, force: bool) -> None:
    import torch

    from features.stats import gap_recovered
    from experiments.pairs.analysis import gold_items, steering_metrics
    from features.latent_stats import matched_random_latents
    from features.steer import clamp_latents
    from activations.progress import log
    from experiments.pairs.stages.load import (finish, load_pair_model, out_dir, problems, prompts as prompts_of,
                                                 tokenizer_of, write)
    from sae.load import load_sae_folder

    tmp = out_dir(run.steering_dir)
    items = problems(cfg)
    who = cfg.features.steer_sae
    feats = json.loads(run.features(who).read_text())
    sae = load_sae_folder(run.sae(who), cfg.device)
    top = feats["top"]
    base, tok = load_pair_model(run, cfg, "base"), tokenizer_of(run, cfg, "base")
    prompts = prompts_of(cfg, tok, items)
    clean, bad, answers = gold_items(items, prompts, cfg.task, cfg.seed)
    ref = steering_metrics(base, tok, cfg.task, cfg.behavior, clean, bad, answers)
    del base
    controls = matched_random_latents(torch.tensor(feats["frequency"]), top, cfg.seed + 1) if top else []
    peak = torch.tensor(feats["max_activation"])
    for v in cfg.models.variants:
        t0 = time.perf_counter()
        model = load_pair_model(run, cfg, v)
        record = {"variant": v, "steer_sae": who, "hook": cfg.sae.hook, "latents": top, "random_control": controls,
                  "base": ref, "variant_metrics": steering_metrics(model, tok, cfg.task, cfg.behavior, clean, bad,
                                                                   answers), "steered": []}
        if not top:
            record["skipped"] = f"no ReasonScore latents for {who}: {feats.get('warning', 'none chosen')}"
        for s in cfg.features.strengths if top else []:
            for kind, lat in (("reasoning", top), ("random", controls)):
                hook = clamp_latents(sae, lat, (s * peak[lat]).tolist())
                m = steering_metrics(model, tok, cfg.task, cfg.behavior, clean, bad, answers,
                                     fwd_hooks=[(cfg.sae.hook, hook)])
                record["steered"].append({"latents": kind, "strength": s, **m, "recovered": {
                    k: gap_recovered(m[k], ref[k], record["variant_metrics"][k]) for k in ("accuracy", "mistake_changes")}})
        write(tmp, run.steering(v).name, record)
        log(f"  steer {v}: {len(record['steered'])} interventions ({time.perf_counter() - t0:.1f} s)")
        del model
    finish(tmp, run.steering_dir)
