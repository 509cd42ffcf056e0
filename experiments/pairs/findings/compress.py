"""ASC on a real model (Azizi et al. 2025): the model's own verbose CoTs against the
concise gold ones (bare equations) of the same problems make one difference-of-means vector
per candidate layer (`features.compress`); the layer and scale are chosen on other problems,
then every scale, and a random direction of the chosen vector's norm, is measured on
held-out problems, each paired against no steering; latency is timed one problem at a time.

    problems   [0, pairs)                   the pairs (greedy CoTs, kept when the answer is
                                            stated and the CoT is >= min_ratio x the concise one)
               [pairs, pairs + select_n)    layer and scale selection
               next n                       held-out measurement
               first timing_n held-out      timing

The pairs do not require a right answer (a small model is often wrong in either style);
the vector is about the style, and accuracy is measured on the held-out problems.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from activations.generate import generate_text
from features.compress import compression_hooks, compression_vectors
from features.stats import difference, pooled
from experiments.pairs.findings.common import cot_text, n_tokens, right, take
from experiments.pairs.findings.config import PairCompressConfig
from experiments.tasks.text import TextProblem, TextTaskConfig, extract_answer, render_cot, render_prompt
from experiments.tasks.text_variants import concise_cot


def _measure(bridge, tok, problems, prompts, task, cfg, batch_size, hooks=()) -> dict:
    texts = generate_text(bridge, tok, prompts, cfg.max_new_tokens, batch_size, fwd_hooks=hooks)
    idx = range(len(problems))
    return {"cot_length": pooled([n_tokens(tok, cot_text(t, task)) for t in texts], idx, kind="mean"),
            "accuracy": pooled([right(t, p, task) for t, p in zip(texts, problems)], idx, kind="rate"),
            "example": texts[0]}


def _vs(m: dict, none: dict) -> dict:
    return {"length_cut": difference(m["cot_length"], none["cot_length"], relative=True),
            "accuracy_change": difference(m["accuracy"], none["accuracy"])}


def compression_study(bridge, tok, problems: Sequence[TextProblem], task: TextTaskConfig, cfg: PairCompressConfig,
                      batch_size: int, seed: int, log=print) -> dict:
    """The organisms' shape (`experiments.behavior.compress`): layer, scale, by_scale,
    length_cut, accuracy_change, random_direction, n_pairs, selection, timing."""
    pair_set = take(problems, 0, cfg.pairs, "findings.compress.pairs")
    select = take(problems, cfg.pairs, cfg.select_n, "findings.compress.select_n")
    held = take(problems, cfg.pairs + cfg.select_n, cfg.n, "findings.compress.n")
    prompt = lambda ps: [render_prompt(p.question, task, tok) for p in ps]  # noqa: E731
    log(f"    compress: {len(pair_set)} CoTs for the pairs")
    outs = generate_text(bridge, tok, prompt(pair_set), cfg.max_new_tokens, batch_size)
    keep = []
    for p, pr, o in zip(pair_set, prompt(pair_set), outs):
        verbose, concise = cot_text(o, task), render_cot(concise_cot(p), None, task)
        if extract_answer(o, task) is not None and verbose.strip() and \
                n_tokens(tok, verbose) >= cfg.min_ratio * n_tokens(tok, concise):
            keep.append((pr, concise, verbose))
    if not keep:
        return {"skipped": f"none of {len(pair_set)} CoTs is well formed and {cfg.min_ratio:g}x the concise one",
                "n_pairs": 0}
    vectors = compression_vectors(bridge, tok, [k[0] for k in keep], [k[1] for k in keep], [k[2] for k in keep],
                                  cfg.layers, "last")
    log(f"    compress: {len(keep)} pairs; selecting among {len(cfg.layers)} layers x {len(cfg.scales)} scales")
    hooks = lambda L, s, v=None: compression_hooks(L, vectors[L] if v is None else v, s, cfg.steer_at)  # noqa: E731
    sel_none = _measure(bridge, tok, select, prompt(select), task, cfg, batch_size)
    table, best = [], None
    for L in cfg.layers:
        for s in cfg.scales:
            m = _measure(bridge, tok, select, prompt(select), task, cfg, batch_size, hooks(L, s))
            cut = m["cot_length"]["value"] / max(sel_none["cot_length"]["value"], 1e-9) - 1
            drop = sel_none["accuracy"]["value"] - m["accuracy"]["value"]
            table.append({"layer": L, "scale": s, "length_cut": cut, "accuracy_drop": drop})
            if drop <= cfg.max_accuracy_drop and (best is None or cut < best["length_cut"]):
                best = table[-1]
    within = best is not None
    if best is None:  # nothing kept accuracy: the least harmful choice, said so
        best = min(table, key=lambda r: (r["accuracy_drop"], r["length_cut"]))
    L, chosen = best["layer"], best["scale"]
    log(f"    compress: layer {L}, scale {chosen:g} chosen; measuring {len(held)} held-out problems")
    pr_held = prompt(held)
    by_scale = {"0": _measure(bridge, tok, held, pr_held, task, cfg, batch_size)}
    for s in cfg.scales:
        by_scale[f"{s:g}"] = _measure(bridge, tok, held, pr_held, task, cfg, batch_size, hooks(L, s))
        by_scale[f"{s:g}"] |= _vs(by_scale[f"{s:g}"], by_scale["0"])
    g = torch.Generator().manual_seed(seed)
    v = vectors[L]
    rand = torch.randn(v.shape, generator=g)
    rand = rand / rand.norm() * v.norm()
    random_dir = _measure(bridge, tok, held, pr_held, task, cfg, batch_size, hooks(L, chosen, rand))
    random_dir |= _vs(random_dir, by_scale["0"])
    timing = _timing(bridge, tok, pr_held[:cfg.timing_n], cfg, hooks(L, chosen))
    at = by_scale[f"{chosen:g}"]
    return {"layer": L, "scale": f"{chosen:g}", "steer_at": cfg.steer_at, "n_pairs": len(keep),
            "pairs_tried": len(pair_set), "vector_norm": float(v.norm()), "by_scale": by_scale,
            "length_cut": at["length_cut"], "accuracy_change": at["accuracy_change"],
            "random_direction": random_dir | {"scale": chosen}, "selection": table, "chosen_within_drop": within,
            "timing": timing, "n": len(held)}


def _timing(bridge, tok, prompts: Sequence[str], cfg: PairCompressConfig, hooks) -> dict:
    """Wall-clock generation one prompt at a time (a batch waits for its longest row), the
    steered and plain runs of each prompt interleaved so drift hits both alike."""
    t = {"none": 0.0, "steered": 0.0}
    for p in prompts:
        for key, h in (("none", ()), ("steered", hooks)):
            t0 = time.perf_counter()
            generate_text(bridge, tok, [p], cfg.max_new_tokens, 1, fwd_hooks=h)
            t[key] += time.perf_counter() - t0
    return {"seconds": t, "speedup": t["none"] / max(t["steered"], 1e-9), "n": len(prompts)}
