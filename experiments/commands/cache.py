"""`saelab cache` and `saelab cache-info`: cache one model's activations, describe a cache."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from simple_parsing import field as simple_field


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
