"""The features stage of a pair run: ReasonScore of every model's SAE on the reasoning words
`cache.words` labels, and in the base an ablation of the top latents against matched random
ones (the causal check), into features/<name>.json. Every rank runs it (ablation is split)."""

from __future__ import annotations

import time
from pathlib import Path

from experiments.rundir import RunDir


def feature_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.features(m) for m in cfg.model_names()]


def run_features(run: RunDir, cfg, force: bool) -> None:
    import torch

    from experiments.pairs.analysis import causal_in_base, gold_items, latent_scores
    from features.latent_stats import matched_random_latents
    from activations.progress import log
    from experiments.engine.distributed import broadcast, dist_rank_world
    from experiments.pairs.stages.load import (finish, load_pair_model, out_dir, problems, prompts as prompts_of,
                                                 tokenizer_of, write)
    from sae.load import load_sae_folder

    tmp = out_dir(run.features_dir)
    items = problems(cfg)
    for name in cfg.model_names():
        t0 = time.perf_counter()
        sae = load_sae_folder(run.sae(name), cfg.device)
        # one pass over the cache on rank 0, not one per rank; the ablation below is split
        scores = latent_scores(sae, run.cache(name), cfg.sae.hook, cfg.features, cfg.cache.words) \
            if dist_rank_world()[0] == 0 else None
        record = {"model": name, "hook": cfg.sae.hook, **broadcast(scores)}
        if name == "base" and record["top"]:
            model, tok = load_pair_model(run, cfg, name), tokenizer_of(run, cfg, name)
            clean, _, answers = gold_items(items, prompts_of(cfg, tok, items), cfg.task, cfg.seed)
            controls = matched_random_latents(torch.tensor(record["frequency"]), record["top"], cfg.seed)
            record["random_control"] = controls
            record["causal"] = causal_in_base(model, tok, sae, cfg.sae.hook, record["top"], controls, clean, answers,
                                              cfg.behavior.batch_size)
        write(tmp, run.features(name).name, record)
        log(f"  features {name}: top ReasonScore latents {record['top']}"
             + (f" ({record['warning']})" if "warning" in record else "") + f" ({time.perf_counter() - t0:.1f} s)")
    finish(tmp, run.features_dir)
