"""`saelab sweep` (one config at several seeds, one run directory each, then their aggregate)
and `saelab aggregate` (finished runs of one config at different seeds as one result)."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from simple_parsing import field as simple_field


@dataclass
class SweepArgs:
    """Run one config at several seeds, one ordinary run directory per seed (OUT/seed-<S>/, exactly
    what `saelab run --config C --seed S --out OUT/seed-S` makes; finished stages are skipped, so a
    sweep resumes), then aggregate the seeds into OUT/aggregate.md, aggregate.json and aggregate.png."""

    seeds: list[int] = simple_field(default=None, required=True, nargs="+")
    """The seeds, e.g. --seeds 0 1 2 (each replaces the config's seed)."""
    out: str = simple_field(default=None, required=True)
    """The sweep folder: OUT/seed-<S>/ per seed and the aggregate (new, empty, or a sweep's own)."""
    config: str = "default"
    """A built-in config (`quick`, `default`) or a path to a YAML file."""
    force: list[str] = field(default_factory=list)
    """Re-run these stages of every seed even if they are up to date (e.g. --force figures report)."""
    until: str | None = None
    """Stop every seed after this stage (then no aggregate is written, unless it is the last stage)."""
    overwrite: bool = False
    """Accept seed run directories written by a different config: re-run the stages it changes."""


def _sweep_command(args: SweepArgs) -> str:
    words = ["saelab", "sweep", "--config", args.config, "--seeds", *map(str, args.seeds), "--out", args.out]
    words += (["--force", *args.force] if args.force else []) + (["--until", args.until] if args.until else [])
    return shlex.join(words + (["--overwrite"] if args.overwrite else []))


def cmd_sweep(args: SweepArgs) -> None:
    from activations.progress import log
    from experiments.aggregate.runs import load_runs
    from experiments.aggregate.sweepdir import SweepDir, claim_sweep, write_aggregate
    from experiments.commands import run as run_command
    from experiments.studies import load_any_config

    twice = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if twice:
        raise ValueError(f"--seeds names seed {twice[0]} twice; give each seed once")
    _, path, study = load_any_config(args.config)  # a config mistake is refused before any seed runs
    out = SweepDir(args.out)
    claim_sweep(out)
    log(f"saelab sweep: config {path}, seeds {' '.join(map(str, args.seeds))}, out {out.root}")
    for i, seed in enumerate(args.seeds, 1):
        log(f"saelab sweep: seed {seed} ({i}/{len(args.seeds)}) started: {out.seed(seed)}")
        t0 = time.perf_counter()
        # `saelab run`'s own code path, so each seed's folder is exactly what that command makes
        run_command.cmd_run(run_command.RunArgs(config=args.config, out=str(out.seed(seed)), seed=seed,
                                                force=list(args.force), until=args.until, overwrite=args.overwrite))
        log(f"saelab sweep: seed {seed} ({i}/{len(args.seeds)}) done in {time.perf_counter() - t0:.0f} s")
    last = study.stages[-1].name
    if args.until is not None and args.until != last:
        log(f"saelab sweep: stopped after the '{args.until}' stage (--until): no aggregate; run the sweep again "
            f"without --until to finish the seeds and aggregate them")
        return
    result = write_aggregate(out, load_runs([out.seed(s) for s in args.seeds]), _sweep_command(args))
    log(f"saelab sweep: {len(result['metrics'])} metrics over seeds {', '.join(result['seeds'])}: {out.md}")


@dataclass
class AggregateArgs:
    """Aggregate finished runs of one config at different seeds: per headline metric the mean over
    the seeds, its between-seed 95% t interval and each seed's value, into OUT/aggregate.json,
    aggregate.md and aggregate.png (with the figure's data in aggregate-figure.json)."""

    runs: list[str] = simple_field(positional=True, nargs="+", metavar="RUN_DIR")
    """Run directories of one config that differ only in the seed, each with its report.json."""
    out: str = simple_field(default=None, required=True)
    """The folder to write into (new, empty, or a sweep folder; an aggregate there is replaced only
    with --overwrite)."""
    overwrite: bool = False
    """Replace an aggregate at OUT (a folder holding anything else is refused)."""


def cmd_aggregate(args: AggregateArgs) -> None:
    from activations.progress import log
    from experiments.aggregate.runs import load_runs
    from experiments.aggregate.sweepdir import SweepDir, claim_aggregate, write_aggregate

    out = SweepDir(args.out)
    claim_aggregate(out, args.overwrite)
    seeds = load_runs(args.runs)
    command = shlex.join(["saelab", "aggregate", *args.runs, "--out", args.out]
                         + (["--overwrite"] if args.overwrite else []))
    result = write_aggregate(out, seeds, command)
    log(f"saelab aggregate: {len(result['metrics'])} metrics over seeds {', '.join(result['seeds'])}: {out.md}")
