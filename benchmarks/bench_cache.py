"""The activation cache against its baselines, measured side by side in one run.

Write: tokens/s of `write_cache` (all hooks, float16, uncompressed) against
  (a) forward-only `run_with_cache` of the same model, hooks, batches and stop layer
      (target: >= 0.9x), and
  (b) SAELens' `CacheActivationsRunner` on the same tokens (one run per hook, as it
      caches one hook at a time; target: >= 1.5x),
on the default organism's shape and on a larger one (d_model 512, 6 layers), random weights.
Read: shuffled-batch rows/s against the rows/s SAELens' `SAETrainer` consumes on the same
  cache (target: >= 20x), and peak RSS while reading a cache 10x larger than the shuffle
  buffer (target: <= 1.5x the buffer plus the interpreter).

    python benchmarks/bench_cache.py            # ~3 minutes on 2 cores
    python benchmarks/bench_cache.py --write-only --n-per-k 4000 \
        --hooks "blocks.{l}.hook_resid_post,blocks.{l}.hook_attn_out,blocks.{l}.hook_mlp_out,blocks.{l}.hook_resid_mid"
                                                # the elicit stage's hooks (every site of every layer, ~1.5M tokens)

Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def _model(root: Path, name: str, **shape) -> str:
    from experiments.organisms.model import ModelConfig, build_model
    from experiments.organisms.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = build_model(ModelConfig(**shape), tok, seed=0)
    model.save_pretrained(root / name)
    tok.save_pretrained(root / name)
    return str(root / name)


def _tokens(n_per_k: int):
    from experiments.cache_set import CacheSetConfig, token_set
    from experiments.organisms.tokenizer import build_tokenizer
    from experiments.tasks import ArithmeticTask

    return token_set(ArithmeticTask(), build_tokenizer(), CacheSetConfig(ks=[2, 3, 4, 5], n_per_k=n_per_k), 0)


def forward_only(bridge, ids, hooks, batch_size, stop) -> float:
    """The floor: the same padded batches through run_with_cache, activations taken off the
    model and cast to float16, nothing stored."""
    import torch

    from activations.tokens import right_pad

    t0 = time.perf_counter()
    for b in range(0, len(ids), batch_size):
        batch = ids[b:b + batch_size]
        tokens, valid = right_pad(batch)
        with torch.inference_mode():
            _, cache = bridge.run_with_cache(tokens, names_filter=hooks, stop_at_layer=stop)
        for h in hooks:
            cache[h][valid].half().cpu()
    return sum(map(len, ids)) / (time.perf_counter() - t0)


def saelens_runner(bridge, model_dir: str, ids, hooks, batch_size, work: Path, tag: str) -> float:
    """CacheActivationsRunner on the same tokens, packed into rows of the median length."""
    import numpy as np
    import sae_lens.cache_activations_runner as car
    from datasets import Dataset
    from sae_lens import CacheActivationsRunner, CacheActivationsRunnerConfig

    car.load_model = lambda *a, **k: bridge  # it cannot take a bridge otherwise
    ctx = 32
    flat = np.concatenate(ids)
    n_rows = len(flat) // ctx // batch_size * batch_size
    ds_tokens = flat[:n_rows * ctx].reshape(n_rows, ctx)
    n_tokens = n_rows * ctx
    d_in = bridge.cfg.d_model
    t0 = time.perf_counter()
    for i, hook in enumerate(hooks):
        ds = Dataset.from_dict({"tokens": ds_tokens.tolist()})
        cfg = CacheActivationsRunnerConfig(
            dataset_path="in-memory", model_name=model_dir, hook_name=hook, d_in=d_in, context_size=ctx,
            training_tokens=n_tokens, model_batch_size=batch_size,
            # exactly one buffer of the whole token set: the default 2 GB loops over the data
            buffer_size_gb=(n_tokens * d_in * 2 + 0.5) / 1e9, new_cached_activations_path=str(work / f"saelens-{tag}-{i}"),
            dtype="float16", device="cpu", shuffle=False)
        CacheActivationsRunner(cfg, override_dataset=ds).run()
    return n_tokens / (time.perf_counter() - t0)


def bench_write(name: str, model_dir: str, n_per_k: int, work: Path, hooks: list[str] | None = None,
                saelens: bool = True) -> None:
    import shutil

    from activations.cache import CacheWriteConfig, write_cache
    from activations.cache.writer import expand_hooks, stop_layer
    from activations.models import load_bridge

    bridge = load_bridge(model_dir)
    ids, labels = _tokens(n_per_k)
    cfg = CacheWriteConfig(batch_size=64, **({"hooks": hooks} if hooks else {}))
    hooks = expand_hooks(cfg.hooks, bridge.cfg.n_layers)
    stop = stop_layer(hooks, bridge.cfg.n_layers)
    n = sum(map(len, ids))
    fwd, ours = [], []
    for rep in range(5):  # interleaved A/B; the median of the per-pair ratios resists machine noise
        fwd.append(forward_only(bridge, ids, hooks, cfg.batch_size, stop))
        shutil.rmtree(work / "ours", ignore_errors=True)
        t0 = time.perf_counter()
        write_cache(bridge, ids, labels, work / "ours", cfg, {"model": name}, progress=False)
        ours.append(n / (time.perf_counter() - t0))
    sl = saelens_runner(bridge, model_dir, ids, hooks, cfg.batch_size, work, tag=Path(model_dir).name) if saelens else None
    import statistics

    f, o = statistics.median(fwd), statistics.median(ours)
    ratios = sorted(x / y for x, y in zip(ours, fwd))
    ratio = statistics.median(ratios)
    print(f"{name}: {n} tokens, {len(hooks)} hooks, d_model {bridge.cfg.d_model}")
    print(f"  forward-only run_with_cache   {f:9.0f} tokens/s")
    print(f"  saelab write_cache            {o:9.0f} tokens/s   ratio to forward-only {ratio:.2f} "
          f"(median of {len(ratios)} interleaved pairs, range {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.9)")
    if sl is not None:
        print(f"  SAELens CacheActivationsRunner{sl:9.0f} tokens/s   saelab / SAELens {o / sl:.2f} (target >= 1.5)")


def bench_read(work: Path) -> None:
    import torch
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig

    from activations.cache import open_cache

    cache = open_cache(work / "ours")
    hook = cache.hooks[-1]
    it = cache.shuffled(hook, 4096, buffer_rows=65_536, seed=0)
    next(it)
    t0, rows = time.perf_counter(), 0
    while time.perf_counter() - t0 < 3:
        rows += len(next(it))
    read = rows / (time.perf_counter() - t0)
    # What the SAE trainer consumes: forward + backward + Adam step of a standard SAE, width 8x.
    d = cache.d_model
    sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=8 * d, l1_coefficient=1.0))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
    batch = next(it)
    t0, rows = time.perf_counter(), 0
    while time.perf_counter() - t0 < 3:
        x_hat = sae.decode(sae.encode(batch))
        loss = (x_hat - batch).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows += len(batch)
    train = rows / (time.perf_counter() - t0)
    print(f"read: shuffled batches {read:,.0f} rows/s; SAE training (d_in {d}, width {8 * d}) consumes "
          f"{train:,.0f} rows/s; ratio {read / train:.0f}x (target >= 20x)")


RSS_CHILD = """
import os, sys
from activations.cache import open_cache
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page  # current resident bytes
c = open_cache(sys.argv[1]); hook = c.hooks[-1]; buffer_rows = int(sys.argv[2])
base = rss()
peak, n = base, 0
for b in c.shuffled(hook, 1024, buffer_rows=buffer_rows, seed=0, epochs=1):
    n += len(b)
    peak = max(peak, rss())
print(base, peak, n)
"""


class RandomActivations:
    """Stands in for a model when only the cache's size matters: random activations of
    width d at one hook, produced far faster than any forward pass."""

    def __init__(self, d_model: int):
        import torch

        self.cfg = type("Cfg", (), {"n_layers": 1, "d_model": d_model})()
        self.hook_dict = {"blocks.0.hook_resid_post": None}
        self._p = torch.nn.Parameter(torch.zeros(1))
        self._g = torch.Generator().manual_seed(0)

    def parameters(self):
        return iter([self._p])

    def run_with_cache(self, tokens, names_filter, stop_at_layer=None):
        import torch

        return None, {h: torch.randn(*tokens.shape, self.cfg.d_model, generator=self._g) for h in names_filter}


def bench_rss(work: Path, d_model: int = 512, rows: int = 1_000_000, buffer_rows: int = 100_000) -> None:
    """Peak RSS of a fresh process reading one epoch of a cache 10x its shuffle buffer."""
    import numpy as np

    from activations.cache import CacheWriteConfig, write_cache

    ids = [np.full(50, 5) for _ in range(rows // 50)]
    write_cache(RandomActivations(d_model), ids, {}, work / "big", CacheWriteConfig(hooks=["blocks.0.hook_resid_post"]),
                {"model": "random"}, progress=False)
    chunk = CacheWriteConfig().chunk_rows
    buffer_bytes = (buffer_rows + chunk) * d_model * 2  # float16 buffer + one chunk
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(work / "big"), str(buffer_rows)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent).stdout.split()
    base, peak, n = map(int, out)
    print(f"rss: cache {rows} rows x {d_model} ({rows * d_model * 2 / 2**20:.0f} MiB float16, "
          f"{len(ids) // 512 + 1} shards), buffer {buffer_rows} rows ({buffer_bytes / 2**20:.0f} MiB); read {n} rows "
          f"in one epoch; RSS after opening {base / 2**20:.0f} MiB, peak while reading {peak / 2**20:.0f} MiB; "
          f"growth / buffer {(peak - base) / buffer_bytes:.2f} (target <= 1.5)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-per-k", type=int, default=400, help="examples per k (x3 text variants, k = 2..5)")
    ap.add_argument("--hooks", default="", help="comma-separated hooks to cache ({l}: every layer); default: resid_post")
    ap.add_argument("--write-only", action="store_true", help="only the write benchmark, without SAELens' runner, "
                    "on the default organism's shape")
    args = ap.parse_args()
    hooks = [h for h in args.hooks.split(",") if h] or None
    import torch

    print(f"cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
          f"max RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        default = _model(work, "default", d_model=128, n_layers=3, n_heads=4, d_mlp=512)
        large = _model(work, "large", d_model=512, n_layers=6, n_heads=8, d_mlp=2048)
        if args.write_only:
            bench_write("default organism shape (d128, 3 layers)", default, args.n_per_k, work, hooks, saelens=False)
            return
        bench_write("larger (d512, 6 layers)", large, args.n_per_k // 8, work, hooks)
        bench_write("default organism shape (d128, 3 layers)", default, args.n_per_k, work, hooks)
        bench_read(work)
        bench_rss(work)


if __name__ == "__main__":
    main()
