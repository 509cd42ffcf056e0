"""`saelab run` and the commands that run or read one stage of a run directory:
`features`, `steer`, `figures`, `browse`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from simple_parsing import field as simple_field

from features.browser import BrowserConfig


@dataclass
class RunArgs:
    """Run a study's stages into a run directory (finished stages are skipped): organisms ->
    behavior -> cache -> sae -> features -> steer -> figures -> report, or for a config with a
    `models` section (a model pair) models -> behavior -> cache -> ... -> report."""

    config: str = "default"
    """A built-in config (`quick`, `default`) or a path to a YAML file."""
    out: str = "runs/default"
    """Run directory (config.yaml, manifest.json, models/, behavior/, figures/, report.md)."""
    seed: int | None = None
    """Override the config's seed."""
    force: list[str] = field(default_factory=list)
    """Re-run these stages even if they are up to date (e.g. --force figures report)."""
    until: str | None = None
    """Stop after this stage."""
    overwrite: bool = False
    """Accept a run directory written by a different config: re-run the stages it changes."""


def cmd_run(args: RunArgs) -> None:
    from activations.progress import log
    from experiments.engine.runner import run_stages
    from experiments.studies import load_any_config

    cfg, path, study = load_any_config(args.config, args.seed)
    log(f"saelab run: config {path}, out {args.out}")  # stdout: an error stays the only line on stderr
    run_stages(cfg, Path(args.out), study.stages, force=args.force, until=args.until, overwrite=args.overwrite, log=log)
    _say_warnings(Path(args.out))


def _say_warnings(out: Path) -> None:
    """The report's warnings (stages with no usable items) as the run's last lines, on stderr."""
    import json
    import sys

    report = out / "report.json"
    warnings = json.loads(report.read_text()).get("warnings") if report.is_file() else None
    for w in warnings or []:
        print(f"saelab run: WARNING: no usable items: {w} (see {report.with_suffix('.md')})", file=sys.stderr)


@dataclass
class StageArgs:
    """Run one stage of an existing run directory (and any unfinished stage before it)."""

    run: str = simple_field(positional=True, metavar="RUN_DIR")
    """A run directory written by `saelab run` (its config.yaml is used)."""
    force: bool = False
    """Re-run the stage even if it is up to date."""


def _run_stage(stage: str, args: StageArgs) -> None:
    from activations.progress import log
    from experiments.engine.runner import run_stages
    from experiments.studies import open_run

    run, cfg, study = open_run(args.run)
    run_stages(cfg, run, study.stages, force=[stage] if args.force else [], until=stage, log=log)


def cmd_features(args: StageArgs) -> None:
    """Latent scores, latent shifts and activation patching: writes RUN_DIR/features/."""
    _run_stage("features", args)


def cmd_steer(args: StageArgs) -> None:
    """The steering sweep with its controls and the validation in the base: writes RUN_DIR/steering/."""
    _run_stage("steer", args)


@dataclass
class FeaturesArgs(StageArgs):
    """Score latents (ReasonScore, latent shift), match paired SAEs and patch activations between
    base and variants in a run directory: RUN_DIR/features/<model>.json."""


@dataclass
class SteerArgs(StageArgs):
    """Steer the variants' latents and measure the gap recovered, with controls and the patching
    oracle, in a run directory: RUN_DIR/steering/<variant>.json."""


@dataclass
class BrowseArgs:
    """Build the feature browser of a run directory: a static site (open DIR/index.html from
    disk, no server, no network) with every latent of every model's SAE, sortable by every
    score of the features stage, and a page per latent (contexts, histogram, logit effects,
    activation by role, the same latent in the other models, steering results)."""

    run: str = simple_field(positional=True, metavar="RUN_DIR")
    """A run directory with the cache, sae and features stages finished."""
    out: str = simple_field(default=None, required=True)
    """The folder to write the site into (new or empty; see --overwrite)."""
    overwrite: bool = False
    """Replace a previous feature browser at OUT (any other folder is refused)."""
    models: list[str] = field(default_factory=list)
    """Only these models (default: all)."""
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    """What each latent page shows."""


def cmd_browse(args: BrowseArgs) -> None:
    from experiments.browse import build_browser

    t = time.perf_counter()
    pages = build_browser(Path(args.run), Path(args.out), args.browser, args.models or None,
                          log=lambda line: print(line, flush=True), overwrite=args.overwrite)
    print(f"saelab browse: {len(pages)} pages in {time.perf_counter() - t:.0f} s; open {Path(args.out) / 'index.html'}",
          file=sys.stderr)


@dataclass
class FiguresArgs:
    """Redraw every figure of a run directory from the data saved beside it (figures/NAME.json),
    without running any model, and say whether each image's pixels are unchanged."""

    run: str = simple_field(positional=True, metavar="RUN_DIR")
    """A run directory whose figures stage has finished."""
    check: bool = False
    """Only compare: write nothing, exit 1 if any redrawn figure differs from its PNG."""


def cmd_figures(args: FiguresArgs) -> int | None:
    from experiments.engine.runner import require_stages
    from experiments.figures.registry import redraw_run
    from experiments.studies import open_run

    run, cfg, study = open_run(args.run)
    require_stages(run, cfg, study.stages, ["figures"], "redrawing the figures")
    same = redraw_run(run.figures, check=args.check)
    for name, ok in same.items():
        print(f"  {name}: {'same pixels' if ok else 'DIFFERENT pixels'}")
    changed = [n for n, ok in same.items() if not ok]
    verb = "checked" if args.check else "redrew"
    print(f"saelab figures: {verb} {len(same)} figures of {run.root}; {len(same) - len(changed)} identical"
          + (f", {len(changed)} differ: {changed}" if changed else ""), file=sys.stderr)
    return 1 if changed and args.check else None
