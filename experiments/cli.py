"""The `saelab` command line. Each subcommand's options are a typed dataclass whose field
docstrings are its `--help`; user mistakes print one line on stderr and exit with 2."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simple_parsing import ArgumentParser
from simple_parsing import field as simple_field

from features.browser import BrowserConfig
from sae.config import SAETrainConfig


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
    from activations.progress import log
    from experiments.engine.runner import run_stages
    from experiments.studies import load_any_config

    cfg, path, study = load_any_config(args.config, args.seed)
    log(f"saelab run: config {path}, out {args.out}")  # stdout: an error stays the only line on stderr
    run_stages(cfg, Path(args.out), study.stages, force=args.force, until=args.until, overwrite=args.overwrite, log=log)


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
    overwrite: bool = False
    """Replace an earlier `saelab behavior` result at OUT."""


def cmd_behavior(args: BehaviorArgs) -> None:
    import json

    from activations.atomic import claim_out_file, json_has_keys, write_atomic
    from experiments.behavior.model_eval import evaluate_model
    from experiments.runconfig import load_run_config
    from experiments.tasks import ArithmeticTask

    out = Path(args.out)  # checked before any work: a bad --out fails now, not after the evaluation
    claim_out_file(out, "a behaviour result", json_has_keys(("model", "reference", "seed", "metrics")),
                   args.overwrite)
    cfg, _ = load_run_config(args.config, args.seed)
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
    from experiments.caching import cache_model
    from experiments.engine.distributed import init_distributed
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


ROLE_CHOICES = ("question", "step", "answer")


def _row_filter(role: str | None, variant: str | None):
    """The cache filter for --role and --variant (None: every row)."""
    from experiments.cache_set import TEXT_VARIANTS
    from experiments.tasks import ROLES

    where = {}
    if role is not None:
        if role not in ROLE_CHOICES:
            raise ValueError(f"--role must be one of {list(ROLE_CHOICES)}, got {role!r}")
        where["role"] = ROLES.index(role)
    if variant is not None:
        if variant not in TEXT_VARIANTS:
            raise ValueError(f"--variant must be one of {list(TEXT_VARIANTS)}, got {variant!r}")
        where["variant"] = TEXT_VARIANTS.index(variant)
    return where or None


@dataclass
class TrainSAEArgs:
    """Train an SAE on one hook of an activation cache (or a crosscoder on two paired caches).

    Any SAELens architecture; saved in SAELens' format (a crosscoder: saelab's own,
    self-describing); `saelab eval-sae` evaluates the result."""

    cache: str
    """The activation cache (e.g. runs/default/activations/base)."""
    hook: str
    """The hook to train on (e.g. blocks.1.hook_resid_post); `saelab cache-info` lists a cache's hooks."""
    out: str
    """Output folder (an interrupted SAE run with the same settings resumes from its checkpoints)."""
    role: str | None = None
    """Train on tokens of one role only: question, step or answer (default: all tokens)."""
    variant: str | None = None
    """Train on one text variant of the cached token set only: gold, paraphrase or corrupt."""
    crosscoder_with: str | None = None
    """A second, token-aligned cache (the fine-tuned model's): train a BatchTopK crosscoder on
    the pair instead of an SAE (with the training options it shares with an SAE; an SAE-only
    one, such as --architecture or --checkpoints, is refused)."""
    overwrite: bool = False
    """Replace an SAE or crosscoder that saelab trained at OUT (any other folder is refused)."""
    sae: SAETrainConfig = field(default_factory=SAETrainConfig)
    """SAE training settings."""


def cmd_train_sae(args: TrainSAEArgs) -> None:
    import json

    from sae.train import train_sae

    where = _row_filter(args.role, args.variant)
    if args.crosscoder_with:
        from sae.crosscoder import CrosscoderConfig, train_crosscoder

        ccfg = CrosscoderConfig.from_sae(args.sae, flag="--")  # refuses the SAE-only options, by name
        metrics = train_crosscoder(args.cache, args.crosscoder_with, args.hook, ccfg, args.out, where=where,
                                   overwrite=args.overwrite)
    else:
        metrics = train_sae(args.cache, args.hook, args.sae, args.out, where=where, overwrite=args.overwrite)
    print(json.dumps(metrics, indent=1))
    print(f"saelab train-sae: wrote {args.out}", file=sys.stderr)


@dataclass
class EvalSAEArgs:
    """Evaluate an SAE on an activation cache (reconstruction, sparsity, spliced loss).

    Explained variance, MSE, cosine, L0, dead and dense fractions; with --model also CE
    recovered and KL with the SAE's reconstruction spliced into the model."""

    cache: str
    """The activation cache to evaluate on (another model's cache of the same tokens: transfer)."""
    sae: str | None = None
    """An SAE folder in SAELens' format (ours or SAELens'); or use --release and --sae_id."""
    release: str | None = None
    """A SAELens pretrained release (needs network or the local Hugging Face cache)."""
    sae_id: str | None = None
    """The SAE's id within --release."""
    hook: str | None = None
    """The hook to read (default: the one the SAE was trained on)."""
    role: str | None = None
    """Only tokens of one role: question, step or answer (default: all tokens)."""
    variant: str | None = None
    """Only one text variant of the cached token set: gold, paraphrase or corrupt."""
    max_rows: int | None = None
    """Evaluate on at most this many rows (default: all)."""
    model: str | None = None
    """Also splice the SAE into this model (folder or HF id) on the cache's sequences: CE
    recovered and KL on all tokens and on CoT-step tokens."""
    max_sequences: int = 200
    """Sequences used for the spliced loss."""
    out: str | None = None
    """Write the metrics to this JSON file too."""
    overwrite: bool = False
    """Replace an earlier `saelab eval-sae` result at OUT."""
    device: str = "cpu"
    """Torch device."""


def cmd_eval_sae(args: EvalSAEArgs) -> None:
    import json

    from activations.atomic import claim_out_file, json_has_keys, write_atomic
    from activations.cache import open_cache
    from sae.evaluate import evaluate_on_cache
    from sae.load import check_fits, load_pretrained, load_sae_folder

    if args.out:  # before any work: a bad --out fails now, not after the evaluation
        ours = json_has_keys(("sae", "cache", "hook", "role", "variant", "reconstruction"))
        claim_out_file(Path(args.out), "an SAE evaluation", ours, args.overwrite)
    if (args.sae is None) == (args.release is None):
        raise ValueError("give either --sae FOLDER or --release R --sae_id ID")
    if args.release is not None and args.sae_id is None:
        raise ValueError("--release needs --sae_id")
    with open_cache(args.cache) as c:  # fail on a bad cache before loading anything big
        d_model, hooks = c.d_model, c.hooks
    sae = load_sae_folder(args.sae, args.device) if args.sae else load_pretrained(args.release, args.sae_id, args.device)
    hook = args.hook or getattr(sae.cfg.metadata, "hook_name", None)
    if hook is None:
        raise ValueError("the SAE does not say which hook it reads; give --hook")
    from sae.load import bridge_hook_name

    try:  # SAEs trained outside TransformerLens record HF module paths (e.g. model.layers.12)
        hook = bridge_hook_name(hook, hooks)
    except ValueError:
        raise ValueError(f"hook {hook!r} is not in the cache {args.cache}; it holds {hooks}") from None
    check_fits(sae, d_model, hook)
    result = {"sae": args.sae or f"{args.release}/{args.sae_id}", "cache": args.cache, "hook": hook, "role": args.role,
              "variant": args.variant,
              "reconstruction": evaluate_on_cache(sae, args.cache, hook, where=_row_filter(args.role, args.variant),
                                                  max_rows=args.max_rows)}
    if args.model:
        from activations.models import load_bridge
        from experiments.stages.sae_data import cache_sequences
        from sae.evaluate import spliced_loss

        ids, step = cache_sequences(args.cache, args.max_sequences)
        result["spliced"] = spliced_loss(sae, load_bridge(args.model, args.device), hook, ids, {"step": step})
    text = json.dumps(result, indent=1)
    if args.out:
        write_atomic(Path(args.out), text)
    print(text)


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


@dataclass
class TinyPairArgs:
    """Write a tiny random-weight model pair of a real architecture (CPU stand-ins for a real
    base/fine-tuned pair): OUT/base and OUT/perturbed, with one small tokenizer."""

    out: str = "models/tiny-qwen2"
    """Output folder."""
    arch: str = "qwen2"
    """Architecture: llama, qwen2, gpt2 or gemma2."""
    perturb: float = 0.05
    """Relative size of the seeded noise added to every weight of the "fine-tuned" model."""
    seed: int = 0
    """Seeds the weights."""
    overwrite: bool = False
    """Replace a tiny pair written earlier at OUT (any other folder is refused)."""


def cmd_tiny_pair(args: TinyPairArgs) -> None:
    from experiments.pairs.tiny import save_tiny_pair

    out = Path(args.out)
    save_tiny_pair(out, args.arch, args.seed, args.perturb, overwrite=args.overwrite)
    print(f"saelab tiny-pair: wrote {out}/base and {out}/perturbed ({args.arch})", file=sys.stderr)


COMMANDS: dict[str, tuple[type, Callable]] = {
    "run": (RunArgs, cmd_run),
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
