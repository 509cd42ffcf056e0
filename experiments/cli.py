"""The `saelab` command line. Each subcommand's options are a typed dataclass whose field
docstrings are its `--help`; user mistakes print one line on stderr and exit with 2."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from simple_parsing import ArgumentParser


@dataclass
class OrganismsArgs:
    """Train the base model organism and its fine-tuned variants, then check their behaviour."""

    config: str = "default"
    """A built-in config (`quick`, `default`) or a path to a YAML file."""
    out: str = "runs/organisms"
    """Run directory: models go to OUT/models/<name>/, the check to OUT/organisms.{json,md}."""
    seed: int | None = None
    """Override the config's seed."""
    overwrite: bool = False
    """Rebuild models whose folder was built from a different config (otherwise an error)."""


def cmd_organisms(args: OrganismsArgs) -> None:
    from experiments.organisms.build import build_organisms
    from experiments.runconfig import load_run_config

    cfg, path = load_run_config(args.config, args.seed)
    print(f"saelab organisms: config {path}, out {args.out}", file=sys.stderr)
    build_organisms(cfg, Path(args.out), overwrite=args.overwrite)


COMMANDS: dict[str, tuple[type, Callable]] = {
    "organisms": (OrganismsArgs, cmd_organisms),
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
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
        if os.environ.get("SAELAB_DEBUG"):
            raise
        print(f"saelab {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"saelab {ns.command}: interrupted; finished models are kept, re-run to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
