"""The finetune stage of a pair run: make the models the `finetune` section names, each from
its start (a model folder, a HF id, or an earlier fine-tune of this run) with a named recipe,
into finetuned/<name>/ (a plain HF folder with finetune.json beside the weights). A model of
the pair whose path is `finetune:NAME` is that folder. Every rank runs it (the HF Trainer
spreads the batches); rank 0 writes."""

from __future__ import annotations

import time
from pathlib import Path

from experiments.rundir import RunDir


def finetune_outputs(run: RunDir, cfg) -> list[Path]:
    # finetuned/index.json even when there is nothing to make: a stage with outputs is skipped
    # once done, like every other
    return [run.finetuned("index.json")] + [run.finetuned(n) / "finetune.json" for n in cfg.finetune]


def run_finetune(run: RunDir, cfg, force: bool) -> None:
    import dataclasses

    from activations.atomic import write_json_atomic
    from activations.progress import log
    from experiments.engine.distributed import dist_rank_world
    from experiments.finetune.train import FinetuneConfig, finetune

    index = {}
    for name, entry in cfg.finetune.items():
        start = str(run.finetuned(entry.start)) if entry.start in cfg.finetune else entry.start
        fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
        ft = FinetuneConfig(**{k: v for k, v in dataclasses.asdict(entry).items() if k in fields})
        # the run's seed moves every fine-tune's (`saelab sweep --seeds` varies the training too)
        ft = dataclasses.replace(ft, seed=ft.seed + cfg.seed)
        t0 = time.perf_counter()
        log(f"  finetune {name}: {entry.recipe} from {start}")
        m = finetune(start, run.finetuned(name), ft, cfg.finetune_task(), log=log)
        speed = f", {m['tokens_per_s']:.0f} tokens/s" if m.get("tokens_per_s") else ""
        log(f"  finetune {name}: loss {m['train_loss']:.4f} ({time.perf_counter() - t0:.0f} s{speed})")
        index[name] = {"start": start, "recipe": entry.recipe, "seconds": m["seconds"], "tokens_per_s": m["tokens_per_s"]}
    if dist_rank_world()[0] == 0:
        run.finetuned("index.json").parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run.finetuned("index.json"), index)
