"""One base-free intervention swept over latent-set sizes: its entries, the size chosen on
the choice set, and the null at that size (`experiments.elicit.sites_stage` and
`experiments.elicit.dictionaries` share it).

An intervention is `make(latents) -> fn_of`, with `fn_of(set name, start, n)` the hooks of
items start..start+n-1 of that probe set: one hook function for the measure's site, or a
list of (hook name, function) pairs (a transcoder reads the MLP input and writes its output).
"""

from __future__ import annotations

from typing import Callable

import torch

from features.latent_stats import matched_random_latents
from features.stats import null_summary


def gap(entry: dict, s: str, metric: str = "follow") -> float | None:
    """An entry's gap recovered of `metric` on probe set `s` (None where the gap is undefined)."""
    return entry["metrics"][s][metric]["gap_recovered"]["value"]


def choose_size(entries: list[dict], ref: dict, max_drop: float) -> dict | None:
    """The entry of largest choice-set follow gap recovered among those whose choice-set
    accuracy stays within `max_drop` of the variant's (None if none is eligible)."""
    floor = ref["variant"]["choose"]["accuracy"]["value"] - max_drop
    ok = [e for e in entries if e["metrics"]["choose"]["accuracy"]["value"] >= floor
          and gap(e, "choose") is not None]
    return max(ok, key=lambda e: gap(e, "choose"), default=None)


def sweep(make: Callable, order: torch.Tensor | list[int], counts: list[int], measure, ref: dict,
          max_drop: float) -> dict:
    """Entries of `make(order[:n])` for each n of `counts`, and the size chosen on the choice set."""
    order = [int(i) for i in order]
    entries = [{"n": n, "latents": order[:n], "metrics": measure(make(order[:n]))} for n in counts]
    best = choose_size(entries, ref, max_drop)
    return {"entries": entries, "chosen": None if best is None else best["n"]}


def chosen_entry(rec: dict) -> dict | None:
    return next((e for e in rec["entries"] if e["n"] == rec["chosen"]), None)


def add_null(rec: dict, measure, draw: Callable[[int], Callable], n_draws: int, kind: str) -> dict:
    """The chosen entry's null: `draw(d)` (d = 1..n_draws) gives the control's `fn_of`,
    measured on the held-out set only."""
    best = chosen_entry(rec)
    if best is not None:
        draws = [gap({"metrics": measure(draw(d), sets=["heldout"])}, "heldout") for d in range(1, n_draws + 1)]
        rec["null"] = null_summary(gap(best, "heldout"), draws)
        rec["null_kind"] = kind
    return rec


def random_latent_null(make: Callable, rec: dict, freq: torch.Tensor, seed: int, pool: int) -> Callable[[int], Callable]:
    """The control of an ablation-like intervention: the same operation on as many random
    latents of matched firing frequency (draw d seeds the choice)."""
    best = chosen_entry(rec)
    return lambda d: make(matched_random_latents(freq, best["latents"], seed + 1000 * d + best["n"], pool))
