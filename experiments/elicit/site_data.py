"""What the elicit stage reads of its training caches (elicit/activations/<model>/): the
rows its SAEs train on (`SiteRows`), the guard that keeps the probe items out of it, SAE and transcoder quality at the answer prefix, the
per-answer mean codes the clamps use, and the ground-truth explanation of every latent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class SiteRows:
    """The rows an elicit SAE trains on: every answer-prefix row and a hashed `other_fraction`
    of the others, of examples with `example % every != 0` (those with 0 are held out, as
    the sae stage's `RowSplit`). A dataclass: its repr keys checkpoints."""

    other_fraction: float
    every: int = 5
    heldout: bool = False

    def __call__(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        split = (cols["example"] % self.every == 0) == self.heldout
        # a fixed pseudo-random keep per row (Knuth's multiplicative hash of the row's place)
        h = ((cols["seq"].astype(np.uint64) * np.uint64(2654435761) + cols["pos"].astype(np.uint64))
             % np.uint64(1_000_003)).astype(np.float64) / 1_000_003
        return split & ((cols["answer_prefix"] == 1) | (h < self.other_fraction))


def prompts_of_tokens(tok, ids: list[np.ndarray], answer_prefix: str) -> set[str]:
    """The question part ("Q:...=") of every tokenised training text."""
    out = set()
    for seq in ids:
        text = tok.decode(seq, skip_special_tokens=True).replace(" ", "")
        out.add(text.split("=", 1)[0] + "=" if "=" in text else text)
    return out


def check_disjoint(train_prompts: set[str], probe, tok) -> int:
    """Refuse a training set that shares a prompt with the held-out or choice probe items of
    `probe` (an `experiments.elicit.probe.Probe`); returns how many probe prompts were checked."""
    probe_prompts = set()
    for items in (probe.sets["heldout"], probe.choose):
        probe_prompts |= prompts_of_tokens(tok, items.ids, "")
    shared = train_prompts & probe_prompts
    if shared:
        raise ValueError(f"the elicit training set shares {len(shared)} prompts with the probe items "
                         f"(e.g. {sorted(shared)[:3]}): it must come from the train split")
    return len(probe_prompts)


@torch.no_grad()
def sae_quality(sae, cache_path: Path, hook: str, rows: SiteRows) -> dict:
    """Held-out answer-prefix rows of the training cache: FVU, L0 and the fraction of latents
    that never fire there (dead at the site's position)."""
    from activations.cache import open_cache

    with open_cache(cache_path) as c:
        cols = {n: c.column(n) for n in ("seq", "pos", "example", "answer_prefix")}
        mask = rows(cols) & (cols["answer_prefix"] == 1)
        x = c.activations(hook)[torch.from_numpy(mask)].float()
    f = sae.encode(x)
    fvu = float((x - sae.decode(f)).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    return {"rows": int(len(x)), "fvu": fvu, "l0": float((f > 0).float().sum(-1).mean()),
            "dead_fraction": float(((f > 0).sum(0) == 0).float().mean())}


@torch.no_grad()
def value_means(sae, cache_path: Path, hook: str, rows: SiteRows, vocab: int) -> torch.Tensor:
    """(vocab, d_sae): the mean code at the answer prefix of training rows whose text continues
    with each answer token, over gold and paraphrased CoTs only (the CoT's value is the answer
    there); rows of a token never seen stay 0."""
    from activations.cache import open_cache
    from experiments.cache_set import TEXT_VARIANTS

    with open_cache(cache_path) as c:
        cols = {n: c.column(n) for n in ("seq", "pos", "example", "answer_prefix", "variant", "token_ids")}
        mask = rows(cols) & (cols["answer_prefix"] == 1) & (cols["variant"] != TEXT_VARIANTS.index("corrupt"))
        at = np.flatnonzero(mask)
        answer = cols["token_ids"][at + 1].astype(np.int64)  # the answer follows the prefix in its sequence
        f = sae.encode(c.activations(hook)[torch.from_numpy(mask)].float())
    sums = torch.zeros(vocab, f.shape[1]).index_add_(0, torch.from_numpy(answer), f)
    counts = torch.bincount(torch.from_numpy(answer), minlength=vocab).clamp_min(1)[:, None]
    return sums / counts


@torch.no_grad()
def explain_site(sae, cache_path: Path, hook: str, tok, max_rows: int = 150_000,
                 paired_with: Path | None = None) -> list[dict | None]:
    """Every latent of `sae` explained by the ground-truth label predicate (or conjunction of
    two) that best predicts where it fires (`features.explain`), on the first `max_rows` rows
    of the cache: chosen on examples with `example % 5 != 0`, scored on the others. Beside
    the task's labels, two answer columns per token: `cot_answer`, the answer the text's CoT
    implies (its written answer), and `true_answer`, the problem's answer (they differ on
    corrupted CoTs): a latent of the memorised shortcut follows the second, a readout the first
    (only where the cache marks the answer prefix; any cache with the task's labels works).
    `paired_with`: the base's token-aligned cache, for a crosscoder (its code reads both
    models' rows, base first)."""
    from activations.cache import open_cache
    from experiments.cache_set import TEXT_VARIANTS
    from experiments.tasks import ROLES, SLOTS
    from features.explain import explain_latents, explanation_record

    with open_cache(cache_path) as c:
        n = min(max_rows, c.n_rows)
        # every label the cache has (the sae stage's probe cache has no answer_prefix column)
        names = [k for k in ("role", "step", "value", "slot", "op", "variant", "abstain", "answer_prefix")
                 if k in c.meta["label_names"]]
        cols = {k: c.column(k)[:n].astype(np.int64) for k in (*names, "seq", "example", "token_ids")}
        x = c.activations(hook)[:n].float()
        if paired_with is not None:
            with open_cache(paired_with) as b:
                x = torch.stack([b.activations(hook)[:n].float(), x], 1)
        f = sae.encode(x)
    labels = {k: cols[k] for k in names}
    if "answer_prefix" in cols:
        at = np.flatnonzero(cols["answer_prefix"] == 1)
        at = at[at + 1 < n]
        answer_of_seq = dict(zip(cols["seq"][at], cols["token_ids"][at + 1]))
        gold = {e: a for e, a, var in zip(cols["example"][at], cols["token_ids"][at + 1], cols["variant"][at])
                if var == TEXT_VARIANTS.index("gold")}
        labels["cot_answer"] = np.array([answer_of_seq.get(q, -1) for q in cols["seq"]])
        labels["true_answer"] = np.array([gold.get(e, -1) for e in cols["example"]])
    vocab = [tok.convert_ids_to_tokens(i) for i in range(len(tok))]
    value_names = {"role": list(ROLES), "slot": list(SLOTS), "variant": list(TEXT_VARIANTS),
                   "cot_answer": vocab, "true_answer": vocab}
    expl = explain_latents(f, labels, cols["example"] % 5 == 0)
    return explanation_record(expl, value_names)


@torch.no_grad()
def transcoder_quality(tc, cache_path: Path, layer: int, rows: SiteRows) -> dict:
    """A transcoder of MLP `layer` on held-out answer-prefix rows: FVU of the MLP output
    predicted from its input, L0, latents that never fire there."""
    from activations.cache import open_cache

    with open_cache(cache_path) as c:
        cols = {n: c.column(n) for n in ("seq", "pos", "example", "answer_prefix")}
        m = torch.from_numpy(rows(cols) & (cols["answer_prefix"] == 1))
        x = c.activations(f"blocks.{layer}.hook_resid_mid")[m].float()
        y = c.activations(f"blocks.{layer}.hook_mlp_out")[m].float()
    f = tc.encode(x)
    fvu = float((y - tc.decode(f)).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    return {"rows": int(len(x)), "fvu": fvu, "l0": float((f > 0).float().sum(-1).mean()),
            "dead_fraction": float(((f > 0).sum(0) == 0).float().mean())}


def transcoder_hooks(layers: list[int]) -> list[str]:
    """The hooks a transcoder of each MLP in `layers` reads and predicts."""
    return [h for l in layers for h in (f"blocks.{l}.hook_resid_mid", f"blocks.{l}.hook_mlp_out")]
