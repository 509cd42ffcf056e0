"""SAE training from the activation cache against the same training from rows in memory,
measured side by side in one run.

Speed: rows/s of SAELens' trainer (saelab's subclass, TopK, width 8x, batch 4096) fed by
  (a) the cache's shuffled iterator (HDF5, float16, a 65k-row shuffle buffer) and
  (b) the same rows held in memory as one float32 tensor, shuffled by index,
  alternating a/b three times per shape (d_in 128 and 512); target a/b >= 0.95. Each is
  also printed as a fraction of this machine's fp32 matmul peak, measured in the same run
  (a 4096^3 matmul), counting 10 * d_in * d_sae FLOPs per row (encoder and decoder, forward
  and backward, as the issue does).
Memory: peak RSS of a fresh process training one epoch over caches of 250k and 1M rows
  (d_in 128) with the same shuffle buffer; target: the larger cache does not raise it.

    python benchmarks/bench_sae.py          # ~3 minutes on 2 cores

Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def matmul_peak_gflops() -> float:
    import torch

    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 4096 ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def write_cache(path: Path, d_in: int, rows: int) -> None:
    from sae.synthetic import synthetic_model, write_synthetic_cache

    write_synthetic_cache(synthetic_model(n_features=4 * d_in, d_model=d_in, seed=0), path, rows)


def in_memory(x, batch: int, seed: int):
    """Endless shuffled batches of the rows of x (N, d), by random permutation per epoch."""
    import torch

    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for s in range(0, len(x) - batch + 1, batch):
            yield x[perm[s:s + batch]]


def fit_rows_per_s(data, d_in: int, steps: int, batch: int) -> float:
    """Rows/s of the trainer's loop (normalisation estimate excluded: it is the same 5 batches)."""
    from sae_lens.config import SAETrainerConfig

    from sae.train import SAETrainConfig, _trainer_class, build_training_sae

    cfg = SAETrainConfig(architecture="topk", expansion=8, k=32, steps=steps, batch_size=batch, norm_batches=5,
                         checkpoints=0)
    trainer = _trainer_class()(SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch,
                                                lr=cfg.lr, lr_end=cfg.lr, n_batches_for_norm_estimate=5),
                               build_training_sae(cfg, d_in), data)
    with contextlib.redirect_stderr(io.StringIO()):
        trainer.activation_scaler.estimate_scaling_factor(d_in, data, 5)
    for _ in range(2):  # warm-up steps, not timed
        trainer.step(next(data))
    trainer.n_training_samples = 0
    with contextlib.redirect_stderr(io.StringIO()):  # the trainer's progress bar
        t = time.perf_counter()
        trainer.fit()
        return steps * batch / (time.perf_counter() - t)


def bench_speed(work: Path, d_in: int, rows: int, steps: int, peak: float, reps: int = 3) -> None:
    from activations.cache import open_cache
    from sae.synthetic import HOOK

    path = work / f"d{d_in}"
    write_cache(path, d_in, rows)
    batch = 4096
    with open_cache(path) as c:
        x = c.activations(HOOK)  # (rows, d_in) float32: the same rows, in memory
        a, b = [], []
        for r in range(reps):
            a.append(fit_rows_per_s(c.shuffled(HOOK, batch, 65_536, seed=r), d_in, steps, batch))
            b.append(fit_rows_per_s(in_memory(x, batch, r), d_in, steps, batch))
    del x
    flops = 10 * d_in * 8 * d_in
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"speed d_in {d_in}, d_sae {8 * d_in}, batch {batch}, {steps} steps x {reps} alternating runs:")
    print(f"  from the cache  {ma:9.0f} rows/s (runs {', '.join(f'{v:.0f}' for v in a)}), "
          f"{ma * flops / 1e9:.1f} GFLOP/s = {ma * flops / 1e9 / peak:.1%} of matmul peak")
    print(f"  from memory     {mb:9.0f} rows/s (runs {', '.join(f'{v:.0f}' for v in b)}), "
          f"{mb * flops / 1e9:.1f} GFLOP/s = {mb * flops / 1e9 / peak:.1%} of matmul peak")
    print(f"  cache / memory  {ma / mb:.3f} (target >= 0.95)")


RSS_CHILD = """
import os, sys, warnings
warnings.simplefilter("ignore")
from activations.cache import open_cache
from sae.synthetic import HOOK
from sae.train import SAETrainConfig, train_sae
page = os.sysconf("SC_PAGE_SIZE")
with open_cache(sys.argv[1]) as c:
    rows = c.n_rows
steps = rows // 4096  # one epoch
train_sae(sys.argv[1], HOOK, SAETrainConfig(architecture="topk", expansion=1, k=8, steps=steps, batch_size=4096,
          buffer_rows=65_536, norm_batches=5, checkpoints=0), sys.argv[2])
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rows)
"""


def bench_rss(work: Path) -> None:
    out = []
    for rows in (250_000, 1_000_000):
        path = work / f"rss{rows}"
        write_cache(path, 128, rows)
        p = subprocess.run([sys.executable, "-c", RSS_CHILD, str(path), str(work / f"sae{rows}")], capture_output=True,
                           text=True, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
        if p.returncode:
            sys.exit(p.stderr)
        peak, n = map(int, p.stdout.split()[-2:])
        out.append(peak)
        print(f"rss: one epoch of SAE training on {n} rows x 128 ({n * 128 * 2 / 2**20:.0f} MiB float16 cache), "
              f"shuffle buffer 65536 rows: peak RSS {peak / 2**20:.0f} MiB")
    print(f"  peak RSS 1M rows / 250k rows: {out[1] / out[0]:.3f} (target: not growing, ~1.0)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="alternating cache/memory runs per shape")
    args = ap.parse_args()
    import torch

    warnings.simplefilter("ignore")
    peak = matmul_peak_gflops()
    print(f"cores {os.cpu_count()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"fp32 matmul peak {peak:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_speed(work, 128, 262_144, steps=60, peak=peak, reps=args.reps)
        bench_speed(work, 512, 131_072, steps=12, peak=peak, reps=args.reps)
        bench_rss(work)


if __name__ == "__main__":
    main()
