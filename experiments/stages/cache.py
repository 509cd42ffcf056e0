"""The `cache` stage: every model's residual streams on the same tokens, into
activations/<model>/ (`activations.cache`). Under torchrun every rank runs it and
`write_cache` splits each model's shards between the ranks.

The study says which tokens (`tokens`: every rank computes the same), how to load a model
(`load_model`) and what a cache records of its model (`provenance`)."""

from __future__ import annotations

import shutil
import time
from typing import Any, Callable

from experiments.engine.distributed import dist_barrier, dist_rank_world
from experiments.engine.stage import Stage
from experiments.rundir import RunDir

Tokens = Callable[[RunDir, Any], tuple[list, dict]]
"""(run, config) -> (token ids per sequence, label columns per sequence)."""
LoadModel = Callable[[RunDir, Any, str], Any]
"""(run, config, model name) -> a TransformerBridge."""
Provenance = Callable[[RunDir, Any, str, Any], dict]
"""(run, config, model name, bridge) -> what the cache's meta.json records of its model."""


def cache_outputs(run: RunDir, cfg) -> list:
    return [p for name in cfg.model_names() for p in run.cache_files(name)]


def cache_stage(tokens: Tokens, load_model: LoadModel, provenance: Provenance, sections: tuple[str, ...],
                inputs: Callable[[RunDir, Any], list]) -> Stage:
    """The cache stage of a study."""

    def run_cache(run: RunDir, cfg, force: bool) -> None:
        from activations.cache import write_cache
        from activations.progress import log

        rank = dist_rank_world()[0]
        ids, labels = tokens(run, cfg)
        for name in cfg.model_names():
            t0 = time.perf_counter()
            out = run.cache(name)
            if force and rank == 0:  # otherwise a complete cache with the same metadata is kept
                shutil.rmtree(out, ignore_errors=True)
            dist_barrier()
            model = load_model(run, cfg, name)
            meta = write_cache(model, ids, labels, out, cfg.cache.write, provenance(run, cfg, name, model),
                               overwrite=True)
            log(f"  cache {name}: {meta['n_rows']} rows x {len(meta['hooks'])} hooks "
                f"({meta['write_config']['dtype']}) in {time.perf_counter() - t0:.1f} s")
            del model

    return Stage("cache", sections, inputs, cache_outputs, run_cache, calls=(tokens, load_model, provenance),
                 distributed=True)
