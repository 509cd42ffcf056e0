"""The subcommands of `saelab` (`experiments.cli` builds the parser from them): each an
arguments dataclass, whose field docstrings are its `--help`, and a `cmd_*` function.

    run        run, features, steer, figures, browse   (a run directory)
    models     behavior, tiny-pair                     (one model, a tiny pair)
    cache      cache, cache-info                       (one activation cache)
    sae        train-sae, eval-sae                     (one SAE on a cache)
"""
