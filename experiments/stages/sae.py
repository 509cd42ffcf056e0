"""The `sae` stage: for every model an SAE at one hook (trained on its cache, or loaded: a
SAELens release or a folder), the base model's architecture frontier, crosscoders between
the base and chosen variants, all evaluated on held-out examples (`experiments.stages.sae_eval`).

    saes/<model>/                 SAE of each model (SAELens format; trained ones all from
                                  the same initialisation and data order: paired)
    saes/frontier/<point>/        the base model's SAE of each frontier point
    saes/crosscoder-<variant>/    crosscoder base x variant, with diff.json
    saes/eval.json                every metric

Under torchrun every rank runs it: rank r trains jobs r, r + world, ... of the list of SAEs
and crosscoders (sparsify's distribute_modules idea: SAELens' trainer has no data-parallel
mode); rank 0 then loads the pretrained SAEs and evaluates everything.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from experiments.engine.distributed import dist_barrier, dist_rank_world
from experiments.engine.stage import Stage
from experiments.rundir import CROSSCODER_FILES, SAE_FILES, RunDir
from experiments.stages.sae_data import RowSplit

LoadModel = Callable[[RunDir, Any, str], Any]
"""(run, config, model name) -> a TransformerBridge (for the spliced loss)."""


def sae_outputs(run: RunDir, cfg) -> list[Path]:
    s = cfg.sae
    folders = [run.sae(m) for m in cfg.model_names()] + [run.frontier(p.name) for p in s.frontier]
    files = [f / n for f in folders for n in SAE_FILES]
    files += [run.crosscoder(v) / n for v in s.crosscoder_variants for n in CROSSCODER_FILES]
    return files + [run.sae_eval]


def _jobs(run: RunDir, cfg, out: Path) -> list[tuple[str, Callable[[], None]]]:
    """(name, train it) for every SAE and crosscoder the stage trains, in a fixed order."""
    from sae.crosscoder import train_crosscoder
    from sae.train import train_sae

    s, names = cfg.sae, cfg.model_names()
    tcfg = dataclasses.replace(s.train, device=cfg.device)
    split = RowSplit.of(s, heldout=False)

    def sae(cache: Path, c, folder: Path) -> Callable[[], None]:
        def train() -> None:
            with warnings.catch_warnings():  # the L0 warning is in the metrics (and the log)
                warnings.simplefilter("ignore", UserWarning)
                train_sae(cache, s.hook, c, folder, where=split)
        return train

    def crosscoder(v: str) -> Callable[[], None]:
        def train() -> None:
            train_crosscoder(run.cache(names[0]), run.cache(v), s.hook, dataclasses.replace(s.crosscoder, device=cfg.device),
                             out / run.crosscoder(v).name, (names[0], v), where=split)
        return train

    jobs = [(m, sae(run.cache(m), tcfg, out / m)) for m in names if m not in s.pretrained]
    jobs += [(f"frontier/{p.name}", sae(run.cache(names[0]), p.config(tcfg), out / "frontier" / p.name))
             for p in s.frontier]
    return jobs + [(f"crosscoder base x {v}", crosscoder(v)) for v in s.crosscoder_variants]


def run_sae(run: RunDir, cfg, force: bool, load_model: LoadModel) -> None:
    from activations.cache import open_paired
    from activations.progress import log
    from experiments.stages.sae_eval import evaluate_saes

    rank, world = dist_rank_world()
    names = cfg.model_names()
    for m in names[1:]:  # refuse caches that are not token-aligned pairs before any training
        with open_paired(run.cache(names[0]), run.cache(m)):
            pass
    tmp = run.sae_scratch
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist_barrier()
    for name, train in _jobs(run, cfg, tmp)[rank::world]:
        t0 = time.perf_counter()
        train()
        # every rank says what it trained
        print(f"  sae {name}: trained in {time.perf_counter() - t0:.1f} s" + (f" (rank {rank})" if world > 1 else ""),
              flush=True)
    dist_barrier()
    if rank == 0:
        from activations.atomic import replace_dir

        evaluate_saes(run, cfg, tmp, load_model, log)
        replace_dir(tmp, run.saes)


def sae_stage(load_model: LoadModel, sections: tuple[str, ...], inputs: Callable[[RunDir, Any], list]) -> Stage:
    """The sae stage of a study."""

    def run_sae_stage(run: RunDir, cfg, force: bool) -> None:
        run_sae(run, cfg, force, load_model)

    return Stage("sae", sections, inputs, sae_outputs, run_sae_stage, calls=(load_model,), distributed=True)
