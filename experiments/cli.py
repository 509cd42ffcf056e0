"""The `saelab` command line. Each subcommand's options are a typed dataclass whose field
docstrings are its `--help` (the commands live in `experiments.commands`); user mistakes
print one line on stderr and exit with 2."""

from __future__ import annotations

import os
import sys
from typing import Callable

from simple_parsing import ArgumentParser

from experiments.commands.claims import ClaimsArgs, cmd_claims
from experiments.commands.cache import CacheArgs, CacheInfoArgs, cmd_cache, cmd_cache_info
from experiments.commands.models import (BehaviorArgs, FinetuneArgs, GetModelArgs, TinyPairArgs, cmd_behavior,
                                         cmd_finetune, cmd_get_model, cmd_tiny_pair)
from experiments.commands.run import (BrowseArgs, FeaturesArgs, FiguresArgs, RunArgs, SteerArgs, cmd_browse,
                                      cmd_features, cmd_figures, cmd_run, cmd_steer)
from experiments.commands.sae import EvalSAEArgs, TrainSAEArgs, cmd_eval_sae, cmd_train_sae
from experiments.commands.sweep import AggregateArgs, SweepArgs, cmd_aggregate, cmd_sweep

COMMANDS: dict[str, tuple[type, Callable]] = {
    "run": (RunArgs, cmd_run),
    "sweep": (SweepArgs, cmd_sweep),
    "aggregate": (AggregateArgs, cmd_aggregate),
    "claims": (ClaimsArgs, cmd_claims),
    "behavior": (BehaviorArgs, cmd_behavior),
    "cache": (CacheArgs, cmd_cache),
    "cache-info": (CacheInfoArgs, cmd_cache_info),
    "train-sae": (TrainSAEArgs, cmd_train_sae),
    "eval-sae": (EvalSAEArgs, cmd_eval_sae),
    "features": (FeaturesArgs, cmd_features),
    "steer": (SteerArgs, cmd_steer),
    "browse": (BrowseArgs, cmd_browse),
    "figures": (FiguresArgs, cmd_figures),
    "tiny-pair": (TinyPairArgs, cmd_tiny_pair),
    "get-model": (GetModelArgs, cmd_get_model),
    "finetune": (FinetuneArgs, cmd_finetune),
}


class _Parser(ArgumentParser):
    """argparse's usage errors as a UsageError for `main`'s one-line handler (argparse would
    print the whole usage and exit by itself). Subcommand parsers are of this class too."""

    def error(self, message: str):
        from experiments.errors import UsageError

        raise UsageError(message)


def build_parser() -> ArgumentParser:
    parser = _Parser(prog="saelab", description="saelab: does fine-tuning destroy reasoning "
                            "or make it decorative? Sparse-autoencoder experiments on model pairs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cls, _) in COMMANDS.items():
        doc = (cls.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
        p.add_arguments(cls, dest="args")
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line (for errors raised while parsing it)."""
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Everything, argument parsing and config checks included, is inside
    one handler: an error the user can fix is one line on stderr and exit 2, nothing else
    (`experiments.errors`); SAELAB_DEBUG=1 shows its traceback instead."""
    from experiments.errors import UsageError, user_message

    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    args = None
    try:
        ns = build_parser().parse_args(argv)
        command, args = ns.command, ns.args
        _, fn = COMMANDS[command]
        # Our stages show their own progress; transformers' per-file loading bars only add noise.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        status = fn(args)
    except KeyboardInterrupt:
        print(f"saelab{' ' + command if command else ''}: interrupted; finished outputs are kept, re-run to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (user_message decides: a user's mistake, or a bug)
        message = user_message(e, getattr(args, "out", None))
        if message is None or os.environ.get("SAELAB_DEBUG"):
            raise
        if isinstance(e, UsageError):
            message += f" (see `saelab{' ' + command if command else ''} --help`)"
        print(f"saelab{' ' + command if command else ''}: error: {message}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
