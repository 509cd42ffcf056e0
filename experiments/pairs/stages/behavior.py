"""The behaviour stage of a pair run: the text behaviour suite on every model, with every
generated CoT, into behavior/<name>.json. Every rank runs it (generation is split)."""

from __future__ import annotations

import time
from pathlib import Path

from experiments.rundir import RunDir


def behavior_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.behavior(m) for m in cfg.model_names()]


def run_behavior(run: RunDir, cfg, force: bool) -> None:
    from activations.progress import log
    from experiments.pairs.behavior import evaluate_text
    from experiments.pairs.stages.load import examples, finish, load_pair_model, out_dir, problems, tokenizer_of, write

    items, shots = problems(cfg), examples(cfg)
    tmp = out_dir(run.behaviors)
    for name in cfg.model_names():
        t0 = time.perf_counter()
        model, tok = load_pair_model(run, cfg, name), tokenizer_of(run, cfg, name)
        result = evaluate_text(model, tok, items, cfg.task, cfg.behavior, cfg.seed, log=log, examples=shots)
        write(tmp, run.behavior(name).name, {"model": name, "seed": cfg.seed, **result})
        m = result["metrics"]
        log(f"  behavior {name}: accuracy {m['accuracy']['value']:.2f}, answered {m['answered']['value']:.2f} "
             f"({time.perf_counter() - t0:.1f} s)")
        del model
    finish(tmp, run.behaviors)
