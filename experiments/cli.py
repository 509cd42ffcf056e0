"""The `saelab` command line. Each subcommand's options are a typed dataclass whose field
docstrings are its `--help`; user mistakes print one line on stderr and exit with 2."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simple_parsing import ArgumentParser
from simple_parsing import field as simple_field


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


@dataclass
class CacheArgs:
    """Cache one model's residual streams on the config's token set (HDF5; resumable; torchrun-aware)."""

    model: str
    """The model: a save_pretrained folder or a HF id."""
    out: str
    """Cache folder to write (resumed if it holds an unfinished cache of the same settings)."""
    config: str = "default"
    """Config whose `task` and `cache` sections to use (built-in name or YAML path)."""
    seed: int | None = None
    """Override the config's seed (it fixes the token set)."""
    overwrite: bool = False
    """Replace a cache at OUT that was written with other settings."""


def cmd_cache(args: CacheArgs) -> None:
    from experiments.caching import cache_model, init_distributed
    from experiments.runconfig import load_run_config
    from experiments.tasks import ArithmeticTask

    cfg, _ = load_run_config(args.config, args.seed)
    rank_device = init_distributed(cfg.device)
    joined = rank_device is not None
    try:
        meta = cache_model(args.model, args.out, ArithmeticTask(cfg.task), cfg.cache, cfg.seed,
                           rank_device or cfg.device, overwrite=args.overwrite)
    finally:
        if joined:
            import torch

            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"saelab cache: {args.out}: {meta['n_rows']} rows x {len(meta['hooks'])} hooks "
              f"({meta['write_config']['dtype']})", file=sys.stderr)


@dataclass
class CacheInfoArgs:
    """Describe an activation cache: provenance, shapes, hooks, label counts, completeness."""

    path: str = simple_field(positional=True, metavar="PATH")
    """The cache folder."""
    verify: bool = False
    """Check every shard's checksum (reads the whole cache once)."""


def cmd_cache_info(args: CacheInfoArgs) -> None:
    from experiments.caching import describe

    print(describe(args.path, verify=args.verify))


COMMANDS: dict[str, tuple[type, Callable]] = {
    "run": (RunArgs, cmd_run),
    "behavior": (BehaviorArgs, cmd_behavior),
    "cache": (CacheArgs, cmd_cache),
    "cache-info": (CacheInfoArgs, cmd_cache_info),
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
    # Our stages show their own progress; transformers' per-file loading bars only add noise.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
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
