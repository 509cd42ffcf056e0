"""`saelab train-sae` and `saelab eval-sae`: one SAE (or crosscoder) on a cache, outside a run."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from sae.config import SAETrainConfig


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
