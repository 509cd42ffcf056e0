"""Train one base x variant crosscoder on a finished run's elicit training caches with settings
of your own, and print its held-out dead fraction, explained variance and latent classes:
how the README compares dead-latent remedies (expansion, AuxK, resampling).

    python -m experiments.elicit.crosscoder_trial runs/default --out /tmp/cc-2x \\
        --set expansion=2 resample_every=50 dead_steps=25

Starts from the run's `elicit.crosscoder` settings; rows as the elicit stage trains and
holds out (`SiteRows`); prints one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch
    import yaml

    from activations.cache import open_paired
    from experiments.elicit.site_data import SiteRows
    from experiments.studies import open_run
    from sae.crosscoder import crosscoder_metrics, load_crosscoder, train_crosscoder
    from sae.diff import diff_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run directory whose elicit stage wrote its training caches")
    ap.add_argument("--out", type=Path, required=True, help="folder for the crosscoder (replaced if it holds one)")
    ap.add_argument("--variant", default=None, help="the variant (default: the first of elicit.variants)")
    ap.add_argument("--site", default=None, help="the hook (default: the first of elicit.sites)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="CrosscoderConfig fields to change")
    a = ap.parse_args(argv)
    run, cfg, _ = open_run(a.run)
    sc = cfg.elicit
    v, site = a.variant or sc.variants[0], a.site or sc.sites[0]
    base, var = run.elicit_cache("base"), run.elicit_cache(v)
    if not base.exists() or not var.exists():
        raise SystemExit(f"{base} holds no cache: run the elicit stage first (saelab run --config ...)")
    changes = dict(s.split("=", 1) for s in a.set)
    cc_cfg = dataclasses.replace(sc.crosscoder, seed=cfg.seed, **{k: yaml.safe_load(x) for k, x in changes.items()})
    t0 = time.perf_counter()
    train = train_crosscoder(base, var, site, cc_cfg, a.out, names=("base", v), where=SiteRows(sc.other_fraction),
                             overwrite=True)
    seconds = time.perf_counter() - t0
    cc = load_crosscoder(a.out)
    with open_paired(base, var) as pair:
        def rows(where):
            return (torch.stack(p, 1) for p in pair.batches(site, 8192, where))

        held = SiteRows(sc.other_fraction, heldout=True)
        heldout = crosscoder_metrics(cc, rows(held))
        prefix = crosscoder_metrics(cc, rows(SiteRows(0.0, heldout=True)))
        counts = diff_table(cc, lambda: rows(held))["counts"]
    print(json.dumps({"variant": v, "site": site, "changes": changes, "train_seconds": round(seconds, 1),
                      "train": train, "heldout": heldout, "answer_prefix_dead_fraction": prefix["dead_fraction"],
                      "classes": counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
