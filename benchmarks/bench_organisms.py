"""Time the model organisms: base tokens/s and wall time, fine-tuning wall time per recipe,
and the whole organisms stage of `saelab run` against its budget (on 2 CPU cores:
`default` <= 8 minutes, leaving the behaviour stage room in `make demo`'s 10; `quick` <= 60 s).

    python benchmarks/bench_organisms.py --config quick
    python benchmarks/bench_organisms.py --config default

Run nothing else heavy meanwhile: two trainings on 2 cores slow each other ~3x.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

BUDGET_S = {"quick": 60.0, "default": 480.0}


def bench(config: str) -> dict:
    from experiments.organisms.build import build_organisms
    from experiments.runconfig import load_run_config

    cfg, _ = load_run_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_organisms(cfg.organisms, cfg.task, cfg.seed, cfg.device, Path(tmp), log=lambda *a: None)
        total = time.perf_counter() - t0
        rows = {p.name: json.loads((p / "metrics.json").read_text()) for p in sorted((Path(tmp) / "models").iterdir())}
    return {"config": config, "total_s": total, "models": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(BUDGET_S), default="quick")
    r = bench(ap.parse_args().config)
    budget = BUDGET_S[r["config"]]
    print(f"config {r['config']}")
    print(f"{'model':<18}{'steps':>7}{'wall s':>9}{'tokens/s':>11}")
    for name, m in r["models"].items():
        print(f"{name:<18}{m['steps']:>7}{m['wall_s']:>9.1f}{m['tokens_per_s']:>11.0f}")
    print(f"organisms stage: {r['total_s']:.1f} s; budget {budget:.0f} s; "
          f"ratio {r['total_s'] / budget:.2f} (<= 1 meets the target)")


if __name__ == "__main__":
    main()
