"""`saelab behavior` (the behavioural suite on one model) and `saelab tiny-pair` (a tiny
random-weight pair of a real architecture)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


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
