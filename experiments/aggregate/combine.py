"""Several seeds of one config as one result: every headline metric's mean over the seeds,
its between-seed 95% t interval and each seed's value.

    aggregate_report(reports) -> {"study", "seeds", "metrics": {key: entry}}

Each entry is `{"metric", "subject", "description", "value", "ci95", "n", "ci", "seeds",
"missing"}`: value = the mean over the seeds that have the metric, ci95 = the t interval
with n - 1 degrees of freedom (`features.stats.mean`; None under two seeds), n = how many
seeds have it, seeds = {seed: its value}, missing = the seeds whose report lacks it or
has None there (nothing measured, no gap to recover). A metric is never dropped: one that
no seed measured has value None, n 0.

The interval is between seeds: it says how much the number moves when the run is repeated
with another seed (problems, initialisation, sampling all change with it), not how precisely
one run measured it (each report's own interval says that).

Seeds are strings ("0", "1") here as in aggregate.json, so the two compare equal.
"""

from __future__ import annotations

from experiments.aggregate.headline import metric_values, study_of_report
from features.stats import mean


def aggregate_report(reports: list[dict]) -> dict:
    """The aggregate of the report.json of each seed of one config (see the module's
    docstring). Refuses reports of two studies, and two reports of one seed."""
    if not reports:
        raise ValueError("nothing to aggregate: give at least one run")
    studies = {study_of_report(r) for r in reports}
    if len(studies) > 1:
        raise ValueError(f"the reports are of different studies ({', '.join(sorted(studies))}); aggregate the seeds "
                         "of one config")
    if any(r.get("seed") is None for r in reports):
        raise ValueError("a report.json without a seed cannot be aggregated: re-run its report stage "
                         "(saelab run --config RUN/config.yaml --out RUN --force report)")
    seeds = [str(r["seed"]) for r in reports]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"seed {twice[0]} appears in {seeds.count(twice[0])} of the reports; each run of an "
                         "aggregate must have its own seed")
    by_seed = dict(sorted(zip(seeds, (metric_values(r) for r in reports)), key=lambda kv: _seed_order(kv[0])))
    keys: dict[str, dict] = {}
    for values in by_seed.values():  # the union, in the first report's order, then what others add
        for key, v in values.items():
            keys.setdefault(key, v)
    metrics = {}
    for key, first in keys.items():
        have = {s: values[key]["value"] for s, values in by_seed.items()
                if key in values and values[key]["value"] is not None}
        summary = mean(have.values())
        metrics[key] = {"metric": first["metric"], "subject": first["subject"], "description": first["description"],
                        "value": summary["value"], "ci95": summary["ci95"], "n": summary["n"], "ci": "t",
                        "seeds": have, "missing": [s for s in by_seed if s not in have]}
    return {"study": studies.pop(), "seeds": list(by_seed), "metrics": metrics}


def _seed_order(seed: str) -> tuple:
    """Seeds in numeric order (10 after 9), anything else after them."""
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)
