"""The probe sets of one variant and their metrics.

    Probe          held-out and trained evaluation sets, the choice set (which picks latents,
                   vectors and strengths) and the held-out extras (truncated CoTs,
                   unanswerable and longer problems)
    evaluate_sets  probe metrics of one model per set, optionally under hooks
    ProbeRunner    the same for many answer-position interventions on one model (each
                   item's prefix runs once)
"""

from __future__ import annotations

from experiments.behavior.model_eval import trained_problems
from experiments.behavior.suite import distinct_problems
from experiments.elicit.config import ElicitConfig
from experiments.probe_items import extra_items, extra_metrics, item_metrics, probe_items
from experiments.rundir import RunDir
from features.patching import LastTokenRunner, last_logits


class Probe:
    """Probe items of one variant: held-out and trained sets, plus the choice set."""

    def __init__(self, run: RunDir, variant: str, task, tok, cfg: ElicitConfig, seed: int):
        held = distinct_problems(task, cfg.n, cfg.k, seed + 1000)  # the behaviour suite's own held-out set
        seen = {ex.prompt for ex in held}
        choose = [ex for ex in distinct_problems(task, cfg.n + cfg.n_choose, cfg.k, seed + 7) if ex.prompt not in seen]
        self.sets = {"heldout": probe_items(task, tok, held, seed)}
        trained = trained_problems(run.model(variant), task) if variant != "base" else None
        if trained:
            self.sets["trained"] = probe_items(task, tok, trained[:cfg.n], seed)
        self.choose = probe_items(task, tok, choose[:cfg.n_choose], seed + 1)
        self.extra = extra_items(task, tok, held, distinct_problems(task, cfg.n, cfg.k, seed + 1000, unanswerable=True),
                                 distinct_problems(task, cfg.n, cfg.k + 1, seed + 1000), seed)


def _metrics(logits_of, probe: Probe, sets: dict | None) -> dict:
    """Metrics per set of `logits_of(ids)` (the answer-position logits of each item); the
    held-out set of the default sets also gets the extras' metrics."""
    out = {name: item_metrics(logits_of(items.ids), items) for name, items in (sets or probe.sets).items()}
    if sets is None:
        out["heldout"] |= extra_metrics(lambda ids: logits_of(ids).argmax(-1).numpy(), probe.extra)
    return out


def evaluate_sets(model, probe: Probe, hooks_for=None, sets: dict | None = None) -> dict:
    """Probe metrics per set (default: the evaluation sets, held-out and trained; the held-out
    set also gets AOC, abstention recall and out-of-distribution accuracy)."""
    return _metrics(lambda ids: last_logits(model, ids, hooks_for), probe, sets)


class ProbeRunner:
    """`evaluate_sets` for many answer-position interventions on one model: every item list
    of the probe gets a `LastTokenRunner` (its prefix runs once), so each intervention costs
    one position per item."""

    def __init__(self, model, probe: Probe):
        self.probe = probe
        lists = [items.ids for items in probe.sets.values()] + [
            probe.choose.ids, probe.extra.truncated, probe.extra.unanswerable, probe.extra.ood.ids]
        self.runners = {id(ids): LastTokenRunner(model, ids) for ids in lists}

    def evaluate(self, fwd_hooks=(), sets: dict | None = None) -> dict:
        """Metrics as `evaluate_sets`, with `fwd_hooks` applied at the answer prefix only."""
        return _metrics(lambda ids: self.runners[id(ids)].logits(fwd_hooks), self.probe, sets)
