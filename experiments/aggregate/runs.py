"""The run directories an aggregate reads: each a finished run, all of one config but the seed.

    load_runs(paths) -> [Seed(run, seed, report)]   refuses (one line each) a folder that is
                                                   not a run, a run without report.json, runs
                                                   of different configs, two runs of one seed
    config_differences(a, b) -> {section: [dotted keys]}   what differs between two configs
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.rundir import RunDir

IGNORED = ("seed",)
"""What runs of one sweep may differ in besides the engine's machine settings (device,
threads: `experiments.engine.runner.MACHINE_KEYS`, which change no reported number's meaning)."""


@dataclass
class Seed:
    run: RunDir
    """The run directory."""
    seed: int
    """Its config's seed."""
    report: dict
    """Its report.json."""


def load_runs(paths: list[str | Path]) -> list[Seed]:
    """Every run of `paths`, checked: a run directory (config.yaml) with a finished report
    (report.json), its report of its own seed, every config equal to the first but the seed."""
    from experiments.config import to_dict
    from experiments.studies import open_run

    if not paths:
        raise ValueError("nothing to aggregate: give the run directories of the seeds")
    seeds, configs = [], []
    for path in paths:
        run, cfg, _ = open_run(path)  # no config.yaml: one line naming it and `saelab run`
        run.require({"report": [run.report_json]}, "aggregating seeds")
        seeds.append(Seed(run, cfg.seed, _read_report(run, cfg.seed)))
        configs.append(to_dict(cfg))
    for s, cfg in zip(seeds[1:], configs[1:]):
        diff = config_differences(configs[0], cfg)
        if diff:
            where = "; ".join(f"{k} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})" if keys != [k] else k
                              for k, keys in diff.items())
            raise ValueError(f"{s.run.root} and {seeds[0].run.root} were run with different configs (they differ in: "
                             f"{where}); aggregate only runs of one config that differ in the seed")
    for i, s in enumerate(seeds):
        other = next((o for o in seeds[:i] if o.seed == s.seed), None)
        if other is not None:
            raise ValueError(f"{other.run.root} and {s.run.root} are both seed {s.seed}; aggregate runs of "
                             "different seeds (saelab sweep --seeds ...)")
    return seeds


def _read_report(run: RunDir, seed: int) -> dict:
    fix = f"saelab run --config {run.config} --out {run.root} --force report"
    try:
        report = json.loads(run.report_json.read_text())
    except ValueError as e:
        raise ValueError(f"{run.report_json} is not valid JSON ({e}); write it again with `{fix}`") from None
    if not isinstance(report, dict) or report.get("seed") != seed:
        got = report.get("seed") if isinstance(report, dict) else None
        raise ValueError(f"{run.report_json} is not the report of its run's config (seed {got}, config.yaml seed "
                         f"{seed}); write it again with `{fix}`")
    return report


def config_differences(a: dict, b: dict) -> dict[str, list[str]]:
    """{top-level section: the dotted keys that differ in it} of two configs (as mappings),
    leaving out the seed and the machine settings."""
    from experiments.engine.runner import MACHINE_KEYS

    skip = set(IGNORED) | set(MACHINE_KEYS)
    out = {}
    for k in sorted((set(a) | set(b)) - skip):
        keys = _leaves(a.get(k), b.get(k), k)
        if keys:
            out[k] = keys
    return out


def _leaves(a: Any, b: Any, prefix: str) -> list[str]:
    """The dotted paths below `prefix` where `a` and `b` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in _leaves(a.get(k), b.get(k), f"{prefix}.{k}")]
    return [] if a == b else [prefix]
