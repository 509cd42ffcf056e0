"""The `saelab` command line. Each subcommand's options are a typed dataclass whose field
docstrings are its `--help`; user mistakes print one line on stderr and exit with 2."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simple_parsing import ArgumentParser


@dataclass
class RunArgs:
    """Run the pipeline: organisms -> behavior -> figures -> report (finished stages are skipped)."""

    config: str = "default"
    """A built-in config (`quick`, `default`) or a path to a YAML file."""
    out: str = "runs/default"
    """Run directory (config.yaml, manifest.json, models/, behavior/, figures/, report.md)."""
    seed: int | None = None
    """Override the config's seed."""
    force: list[str] = field(default_factory=list)
    """Re-run these stages even if they are up to date (organisms, behavior, figures, report)."""
    until: str | None = None
    """Stop after this stage."""
    overwrite: bool = False
    """Accept a run directory written by a different config: re-run the stages it changes."""


def cmd_run(args: RunArgs) -> None:
    from experiments.pipeline import run_pipeline
    from experiments.runconfig import load_run_config
    from experiments.stages import STAGES

    cfg, path = load_run_config(args.config, args.seed)
    print(f"saelab run: config {path}, out {args.out}", file=sys.stderr)
    run_pipeline(cfg, Path(args.out), STAGES, force=args.force, until=args.until, overwrite=args.overwrite,
                 log=lambda line: print(line, flush=True))


@dataclass
class BehaviorArgs:
    """Run the behavioural suite on one model and write its results as JSON."""

    model: str
    """The model: a save_pretrained folder (e.g. runs/default/models/sft-direct) or a HF id."""
    out: str
    """Output JSON file."""
    reference: str | None = None
    """A second model that also scores InfoGain (e.g. the base); default: the model alone."""
    config: str = "default"
    """Config whose `task` and `behavior` sections to use (built-in name or YAML path)."""
    seed: int | None = None
    """Override the config's seed (it fixes the evaluation problems)."""


def cmd_behavior(args: BehaviorArgs) -> None:
    import json

    from experiments.behavior.model_eval import evaluate_model
    from experiments.pipeline import write_atomic
    from experiments.runconfig import load_run_config
    from experiments.tasks import ArithmeticTask

    cfg, _ = load_run_config(args.config, args.seed)
    out = Path(args.out)
    if out.suffix != ".json" or out.is_dir():
        raise ValueError(f"--out must be a .json file, got {args.out!r}")
    out.parent.mkdir(parents=True, exist_ok=True)  # fail now, not after the evaluation
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"cannot write to {out.parent}")
    metrics = evaluate_model(args.model, ArithmeticTask(cfg.task), cfg.behavior, cfg.seed, cfg.device,
                             reference=args.reference)
    write_atomic(out, json.dumps({"model": args.model, "reference": args.reference, "seed": cfg.seed,
                                  "metrics": metrics}, indent=1))
    acc = " ".join(f"k{k}={c['value']:.2f}" for k, c in metrics["accuracy"].items())
    print(f"saelab behavior: wrote {out} (accuracy {acc})", file=sys.stderr)


COMMANDS: dict[str, tuple[type, Callable]] = {
    "run": (RunArgs, cmd_run),
    "behavior": (BehaviorArgs, cmd_behavior),
}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="saelab", description="saelab: does fine-tuning destroy reasoning "
                            "or make it decorative? Sparse-autoencoder experiments on model pairs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cls, _) in COMMANDS.items():
        doc = (cls.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
        p.add_arguments(cls, dest="args")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    _, fn = COMMANDS[ns.command]
    try:
        fn(ns.args)
    except (ValueError, OSError, FloatingPointError) as e:  # OSError: missing, unwritable, full disk, ...
        if os.environ.get("SAELAB_DEBUG"):
            raise
        print(f"saelab {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"saelab {ns.command}: interrupted; finished outputs are kept, re-run to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
