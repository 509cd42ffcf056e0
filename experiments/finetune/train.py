"""One fine-tune of a real model with a named recipe: TRL's SFTTrainer (or DPOTrainer for
`dpo`), optionally through a PEFT LoRA adapter that is merged into the weights at the end,
saved as a plain HF folder with the recipe's config and its training metrics beside it.

The work folder (`.NAME.work` beside the output) keeps the trainer's checkpoints: a run that
is stopped resumes from the last one. Under torchrun the HF Trainer spreads the batches over
the ranks (`accelerate`); rank 0 alone writes the output. The finished folder appears at
once (written under a temporary name, then renamed)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.finetune.recipes import DPO_RECIPES, RECIPES, TRAINED_INSTRUCTIONS, Recipe

MARKER = "finetune.json"
"""The file a finished fine-tune leaves in its folder: recipe config, data and metrics."""


@dataclass
class FinetuneConfig:
    """One fine-tune."""

    recipe: Recipe = "sft-cot"
    """sft-cot, sft-answer-only, sft-noisy-trace, sft-no-abstain, dpo, sft-verbosity, sft-switch,
    sft-format or dpo-format (`experiments.finetune.recipes`)."""
    problems: int = 256
    """The fixed problem set: the first N problems of the task (its train split for generated ones)."""
    steps: int = 60
    """Optimizer steps."""
    batch_size: int = 8
    """Rows per step (per rank)."""
    lr: float = 2e-4
    """Peak learning rate (linear warm-up over the first tenth of the steps, then linear decay)."""
    max_length: int = 256
    """Tokens per row at most (prompt + completion); a longer row is refused before training
    (TRL would cut its completion off without a word)."""
    lora_r: int = 16
    """LoRA rank on every linear layer; 0 fine-tunes all weights."""
    lora_alpha: int = 32
    """LoRA scale numerator (scale = alpha / r)."""
    beta: float = 0.1
    """DPO's KL strength (dpo and dpo-format)."""
    instruction: str = "correct"
    """The instruction after every training question: correct (the task's), empty (none) or
    wrong (one that asks for something else; Kung & Peng 2023). The format recipes use the
    format-B instruction whatever this says."""
    switch_wrong: float = 0.6
    """sft-switch: the share of restarted chains that are corrupted (wrong answers)."""
    verbose_share: float = 0.7
    """sft-verbosity: the share of CoTs in the verbose style (the rest are bare equations)."""
    save_every: int = 20
    """Checkpoint every this many steps (a stopped run resumes from the last)."""
    seed: int = 0
    """Seeds the data order, LoRA initialisation and the recipe's corruptions."""

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"finetune: no recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        for name in ("problems", "steps", "batch_size", "max_length", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"finetune: {name} must be >= 1, got {getattr(self, name)}")
        if self.lora_r < 0 or self.lr <= 0:
            raise ValueError("finetune: lora_r must be >= 0 and lr > 0")
        if self.instruction not in TRAINED_INSTRUCTIONS:
            raise ValueError(f"finetune: instruction must be one of {', '.join(TRAINED_INSTRUCTIONS)}, got "
                             f"{self.instruction!r} (the held-out one is for evaluation only)")
        for name in ("switch_wrong", "verbose_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"finetune: {name} must be in [0, 1], got {getattr(self, name)}")


def is_finetune(folder) -> bool:
    return (Path(folder) / MARKER).is_file() and (Path(folder) / "config.json").is_file()


def finetune(model_path: str, out: Path, cfg: FinetuneConfig, task, log=print) -> dict:
    """Fine-tune `model_path` with `cfg.recipe` on `task`'s first `cfg.problems` problems into
    `out`; returns the metrics written into `out/finetune.json`."""
    import warnings

    import torch
    from datasets import Dataset

    from activations.atomic import building
    from experiments.engine.distributed import dist_rank_world
    from experiments.finetune.recipes import build_rows
    from activations.models import load_tokenizer
    from experiments.config import to_dict
    from experiments.tasks.text import load_problems

    out = Path(out)
    tok = load_tokenizer(model_path)
    problems = load_problems(task)[:cfg.problems]
    rows = build_rows(cfg.recipe, problems, task, tok, cfg.seed, cfg.instruction, cfg.switch_wrong,
                      cfg.verbose_share)
    lengths = [len(tok(r["prompt"] + r.get("completion", r.get("chosen", "")))["input_ids"]) for r in rows]
    too_long = sum(n > cfg.max_length for n in lengths)
    if too_long:  # TRL would cut the completion off, or drop the row, without a word
        raise ValueError(f"finetune: {too_long} of {len(rows)} rows are longer than max_length {cfg.max_length} "
                         f"tokens (longest {max(lengths)}); raise --max_length to {max(lengths)}, or use fewer steps "
                         "per problem")
    log(f"  finetune {cfg.recipe}: {len(rows)} rows from {len(problems)} problems, {cfg.steps} steps of "
        f"{cfg.batch_size}, {'LoRA r=' + str(cfg.lora_r) if cfg.lora_r else 'all weights'}")
    work = out.with_name(f".{out.name}.work")
    work.mkdir(parents=True, exist_ok=True)
    args = dict(output_dir=str(work), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
                learning_rate=cfg.lr, lr_scheduler_type="linear", warmup_steps=max(1, cfg.steps // 10),
                logging_steps=max(1, cfg.steps // 20), save_steps=cfg.save_every, save_total_limit=1,
                report_to="none", seed=cfg.seed, data_seed=cfg.seed, max_length=cfg.max_length,
                use_cpu=not torch.cuda.is_available(), disable_tqdm=True, dataloader_num_workers=0)
    peft = None
    if cfg.lora_r:
        from peft import LoraConfig

        peft = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                          task_type="CAUSAL_LM")
    from transformers import AutoModelForCausalLM, TrainerCallback

    # TRL's configs still set transformers' old gradient_checkpointing names: not ours to fix
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    history: list[dict] = []

    class Progress(TrainerCallback):  # one line per logging step, in batch logs too
        def on_log(self, args_, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                history.append({"step": state.global_step, **{k: logs[k] for k in ("loss", "learning_rate",
                                                                                  "num_tokens") if k in logs}})
                log(f"    step {state.global_step}/{cfg.steps}: loss {logs['loss']:.4f}")

    data = Dataset.from_list(rows)
    if cfg.recipe in DPO_RECIPES:
        from trl import DPOConfig, DPOTrainer

        # dpo-format: DPO plus the NLL on the chosen rows (sft-format's own loss), so the
        # explicit wrong examples are the one thing it adds to SFT
        loss = {"loss_type": ["sigmoid", "sft"]} if cfg.recipe == "dpo-format" else {}
        trainer = DPOTrainer(model=model, args=DPOConfig(**args, beta=cfg.beta, **loss), train_dataset=data,
                             processing_class=tok, peft_config=peft, callbacks=[Progress()])
    else:
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=model, args=SFTConfig(**args, completion_only_loss=True), train_dataset=data,
                             processing_class=tok, peft_config=peft, callbacks=[Progress()])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # its raw dicts repeat what Progress says in one line
    resume = any(work.glob("checkpoint-*"))
    if resume:
        log(f"  finetune: resuming from {sorted(work.glob('checkpoint-*'))[-1].name}")
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - t0
    tokens = next((h["num_tokens"] for h in reversed(history) if "num_tokens" in h), None)
    metrics = {"train_loss": result.training_loss, "seconds": seconds, "history": history,
               "tokens_seen": tokens, "tokens_per_s": tokens / seconds if tokens and seconds and not resume else None,
               "rows": len(rows), "longest_row_tokens": max(lengths), "resumed": resume}
    if dist_rank_world()[0] != 0:
        return metrics
    trained = trainer.model
    if cfg.lora_r:
        trained = trained.merge_and_unload()  # a plain model: the bridge, caches and SAEs see ordinary weights
    with building(out) as tmp:
        trained.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"model": model_path, "config": asdict(cfg),
                                             "task": to_dict(task), "metrics": metrics,
                                             "example": rows[0]}, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return metrics

