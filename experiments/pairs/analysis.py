"""Reasoning latents of a pair on text, their causal effect in the base, and steering.

features: per model, ReasonScore of its SAE on its cache (anchors: tokens of the reasoning
    words inside CoTs; groups: the words), each latent's firing frequency and maximum, the
    top latents; in the base, log p(gold answer | gold CoT) with the top latents ablated
    at every position (SAE error kept) beside as many frequency-matched random latents.
steer: per variant, the forced answer after the gold CoT (accuracy) and after a gold CoT
    with one number changed (does the answer move?), for the base, the variant, and the
    variant with the steering SAE's top latents clamped at multiples of their maximum,
    beside the same clamp on matched random latents. Gap recovered = (steered - variant) /
    (base - variant): positive when steering moves the variant towards the base, whichever
    side of it the base is.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import torch

from features.stats import mean, rate
from experiments.pairs.config import PairFeaturesConfig
from experiments.tasks.text import TextProblem, TextTaskConfig, insert_mistake, same_answer


@torch.no_grad()
def frequency_and_max(sae, cache_path: str | Path, hook: str, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_sae,) firing frequency and (d_sae,) maximum activation of each latent on a cache,
    position 0 of each sequence left out."""
    from activations.cache import open_cache

    count = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    top = torch.zeros(sae.cfg.d_sae)
    n = 0
    with open_cache(cache_path) as cache:
        # Position 0 (BOS, or the first token) carries the massive activations of Llama- and
        # Qwen-type models; a clamp at multiples of a maximum taken there would be huge.
        for x in cache.batches(hook, batch_size, where=lambda cols: cols["pos"] > 0):
            f = sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
            count += (f > 0).sum(0).double()
            top = torch.maximum(top, f.amax(0))
            n += len(f)
    return count / max(n, 1), top


def latent_scores(sae, cache_path: Path, hook: str, cfg: PairFeaturesConfig, words: list[str]) -> dict:
    """ReasonScore and firing statistics of every latent, and the top `cfg.top` latents."""
    from features.reason_score import ReasonScoreConfig, reason_scores

    freq, top = frequency_and_max(sae, cache_path, hook)
    rcfg = ReasonScoreConfig(anchor={"rword": 1}, group_by="word", window_left=cfg.window_left,
                             window_right=cfg.window_right, alpha=cfg.alpha)
    out = {"d_sae": int(sae.cfg.d_sae), "frequency": [float(f"{v:.6g}") for v in freq.tolist()],
           "max_activation": [float(f"{v:.6g}") for v in top.tolist()]}
    try:
        r = reason_scores(sae, cache_path, hook, rcfg)
    except ValueError as e:  # no reasoning word in the cached CoTs: no score, said so
        return out | {"reason_score": None, "top": [], "warning": str(e)}
    score = r["score"]
    alive = top > 0
    order = [int(i) for i in torch.argsort(score, descending=True) if alive[i]][:cfg.top]
    return out | {"reason_score": [float(f"{v:.6g}") for v in score.tolist()], "top": order,
                  "n_reasoning_positions": r["n_reasoning"], "words_seen": [words[g] for g in r["groups"]]}


def gold_items(problems: Sequence[TextProblem], prompts: Sequence[str], task: TextTaskConfig, seed: int
               ) -> tuple[list[str], list[str], list[str]]:
    """(clean prefixes, mistake prefixes, gold answers) of the answerable problems: the answer
    is forced after the gold CoT and after the gold CoT with one number changed (problems with
    no number keep it clean)."""
    from experiments.pairs.behavior import forced_prefix

    rng = random.Random(f"pair-items-{seed}")
    clean, bad = [], []
    kept = [(p, prompt) for p, prompt in zip(problems, prompts) if p.answerable]
    for p, prompt in kept:
        clean.append(forced_prefix(prompt, p.steps, task))
        numbered = [j for j, s in enumerate(p.steps) if any(c.isdigit() for c in s)]
        steps = insert_mistake(p.steps, rng.choice(numbered), rng.randrange(1 << 30)) if numbered else p.steps
        bad.append(forced_prefix(prompt, steps, task))
    return clean, bad, [p.answer for p, _ in kept]


def causal_in_base(model, tok, sae, hook: str, latents: list[int], controls: list[int], clean: list[str],
                   answers: list[str], batch_size: int) -> dict:
    """Mean log p(gold answer | gold CoT) of the base, plain and with latents ablated."""
    from experiments.pairs.behavior import logprobs
    from features.steer import ablate_latents

    ans = [" " + a for a in answers]

    def lp(latents_):
        hooks = [(hook, ablate_latents(sae, latents_))] if latents_ else []
        return logprobs(model, tok, clean, ans, batch_size, fwd_hooks=hooks)

    plain = lp([])
    out = {"plain": mean(plain)}
    for name, lat in (("top", latents), ("random", controls)):
        if lat:
            out[name] = mean(a - b for a, b in zip(lp(lat), plain))
    return out


def steering_metrics(model, tok, task: TextTaskConfig, behavior, clean: list[str], bad: list[str],
                     answers: list[str], fwd_hooks=()) -> dict:
    """Accuracy of the answer forced after the gold CoT, and how often a changed number moves it."""
    from experiments.pairs.behavior import forced_answers

    got = forced_answers(model, tok, clean + bad, task, behavior, fwd_hooks)
    a_clean, a_bad = got[:len(clean)], got[len(clean):]
    return {"accuracy": rate(same_answer(a, g) for a, g in zip(a_clean, answers)),  # no answer: not correct
            "mistake_changes": rate(not same_answer(b, a) for a, b in zip(a_clean, a_bad)
                                    if a is not None and b is not None)}
