"""A TopK transcoder for an MLP (SAELens can load transcoders but not train them).

A transcoder reads the MLP's input (e.g. `blocks.L.ln2.hook_normalized` or
`blocks.L.hook_resid_mid`) and predicts the MLP's output (`blocks.L.hook_mlp_out`) through a
sparse code (Dunefsky et al. 2024, "Transcoders find interpretable LLM feature circuits"):

    pre   = relu((s_in x - b_in) @ W_enc + b_enc)                           (B, d_sae)
    f     = TopK_k(pre)          (training: the k largest of each row)       (B, d_sae)
    y_hat = (f @ W_dec + b_dec) / s_out                                     (B, d_out)

with x (B, d_in) and y (B, d_out) raw activations, s_in = sqrt(d_in) / E||x|| and
s_out = sqrt(d_out) / E||y|| (SAELens' `expected_average_only_in` rule, one scalar per side),
decoder rows kept at unit norm (so a latent cannot win the TopK by shrinking its decoder),
and the loss the batch's fraction of variance unexplained in normalised units.

Saved format. SAELens 6.54 has no TopK transcoder: its `transcoder` is a plain ReLU (no
sparsity at inference), and `jumprelu_transcoder` keeps the latents whose pre-activation
exceeds a per-latent threshold. So after training a single threshold is calibrated (as
`sae.crosscoder.calibrate_threshold` does): the smallest pre-activation that BatchTopK would
keep, i.e. the (k * B)-th largest of a batch, averaged over `threshold_batches` batches, so the
inference L0 is k on average over rows like the training rows. Our module then encodes by
that threshold too (`encode(x, topk=True)` still gives the training-time TopK), and it is
saved as a SAELens `jumprelu_transcoder` with s_in, s_out and b_in folded into the weights:

    W_enc' = s_in W_enc,  b_enc' = b_enc - b_in @ W_enc,  W_dec' = W_dec / s_out,
    b_dec' = b_dec / s_out,  threshold' = threshold (for every latent)

so `SAE.load_from_disk(folder)` maps raw x to raw y and reproduces our module's inference
outputs (latents and y_hat) to float32 rounding: within 1e-5 absolute and relative in the tests
(a latent whose pre-activation lies within rounding of the threshold could in principle flip).
The metrics are of that saved (threshold) model; `fvu_topk` is the TopK mode's, for comparison.

The folder holds SAELens' `cfg.json` + `sae_weights.safetensors` (metadata: hook_name is
the input hook, hook_name_out the output hook, k and trained_as="topk_transcoder"), plus
`train_config.json` and `metrics.json`.

Training from a cache needs the rows of two hooks of the same tokens. The cache reader
yields one hook per cache; `stream_shuffled` reads several token-aligned caches in lockstep,
so it is given the one cache twice, each view reading its own hook (`shuffled_pairs`): the same
bounded-memory shuffle (buffer_rows), the same `where` filter, and the same seeded order.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from activations.atomic import building, claim_out_dir
from activations.progress import progress
from sae.config import CoderTrainConfig

ARCHITECTURE = "jumprelu_transcoder"  # SAELens' name of the saved format
TRAINED_AS = "topk_transcoder"        # what cfg.json's metadata says saelab trained


@dataclass
class TranscoderConfig(CoderTrainConfig):
    """One transcoder's training run: the fields every sparse coder's run has
    (`CoderTrainConfig`, documented there; here d_sae = expansion * d_in and k is the exact
    number of active latents per row in training), and the transcoder's own."""

    threshold_batches: int = 10
    """Batches of training rows that calibrate the inference threshold after training."""

    _kind = "transcoder"
    _at_least_one = (*CoderTrainConfig._at_least_one, "threshold_batches")

    def check_widths(self, d_in: int, d_out: int) -> int:
        """d_sae for inputs of width d_in; refuses widths < 1 and k > d_sae."""
        if d_in < 1 or d_out < 1:
            raise ValueError(f"transcoder widths must be >= 1, got d_in={d_in}, d_out={d_out}")
        d_sae = self.expansion * d_in
        if self.k > d_sae:
            raise ValueError(f"transcoder k={self.k} exceeds d_sae={d_sae} (expansion {self.expansion} x d_in "
                             f"{d_in}): lower k or raise expansion")
        return d_sae


class TopKTranscoder(nn.Module):
    """Shapes: W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_out), b_dec (d_out,),
    b_in (d_in,); buffers scale_in, scale_out (scalars) and threshold (scalar; < 0: not
    calibrated yet, then `encode` uses TopK). Weights live in normalised units."""

    def __init__(self, d_in: int, d_out: int, d_sae: int, k: int):
        super().__init__()
        if not 1 <= k <= d_sae:
            raise ValueError(f"transcoder k={k} must be between 1 and d_sae={d_sae}")
        self.d_in, self.d_out, self.d_sae, self.k = d_in, d_out, d_sae, k
        w_enc = torch.randn(d_in, d_sae)
        self.W_enc = nn.Parameter(w_enc / w_enc.norm(dim=0, keepdim=True))
        w_dec = torch.randn(d_sae, d_out)
        self.W_dec = nn.Parameter(w_dec / w_dec.norm(dim=1, keepdim=True))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        self.b_in = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale_in", torch.tensor(1.0))
        self.register_buffer("scale_out", torch.tensor(1.0))
        self.register_buffer("threshold", torch.tensor(-1.0))

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d_in) raw -> relu'd pre-activations (B, d_sae)."""
        return torch.relu((x * self.scale_in - self.b_in) @ self.W_enc + self.b_enc)

    def topk(self, pre: torch.Tensor) -> torch.Tensor:
        """(B, d_sae): each row's k largest pre-activations, the rest 0."""
        vals, idx = pre.topk(self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, idx, vals)

    def encode(self, x: torch.Tensor, topk: bool = False) -> torch.Tensor:
        """Latents (B, d_sae) of raw x (B, d_in): those above the threshold (what is saved),
        or each row's TopK (training; also before calibration)."""
        pre = self.pre_acts(x)
        if topk or self.threshold < 0:
            return self.topk(pre)
        return pre * (pre > self.threshold)

    def decode_normalised(self, f: torch.Tensor) -> torch.Tensor:
        """f (B, d_sae) -> y_hat (B, d_out) in normalised units."""
        return f @ self.W_dec + self.b_dec

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """f (B, d_sae) -> raw y_hat (B, d_out)."""
        return self.decode_normalised(f) / self.scale_out

    def forward(self, x: torch.Tensor, topk: bool = False) -> torch.Tensor:
        return self.decode(self.encode(x, topk))

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def folded(self) -> dict[str, torch.Tensor]:
        """SAELens JumpReLUTranscoder weights mapping raw x to raw y (see the module docstring)."""
        return {"W_enc": self.W_enc * self.scale_in, "b_enc": self.b_enc - self.b_in @ self.W_enc,
                "W_dec": self.W_dec / self.scale_out, "b_dec": self.b_dec / self.scale_out,
                "threshold": self.threshold.clamp_min(0).expand(self.d_sae)}


def fvu(y: torch.Tensor, y_hat: torch.Tensor) -> float:
    """Fraction of the variance of y (B, d_out) that y_hat leaves unexplained (over the batch)."""
    y, y_hat = y.double(), y_hat.double()
    return ((y - y_hat).pow(2).sum() / (y - y.mean(0)).pow(2).sum().clamp_min(1e-30)).item()


def _check_batch(x: torch.Tensor, y: torch.Tensor, d_in: int, d_out: int) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != d_in or y.shape[1] != d_out or len(x) != len(y):
        raise ValueError(f"transcoder batches must be (x (B, {d_in}), y (B, {d_out})) of the same rows, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def train_transcoder_on(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], d_in: int, d_out: int,
                        cfg: TranscoderConfig) -> tuple[TopKTranscoder, dict]:
    """Train on an endless iterator of (x (B, d_in), y (B, d_out)) raw float batches.

    Uses `norm_batches` batches for the scales (and the initial b_in, b_dec: the normalised
    means), `steps` for Adam, `threshold_batches` for the threshold and one more, unseen in
    training, for the metrics: fvu and l0 (mean active latents per row) of the threshold
    (saved) model, fvu_topk of the TopK mode, and dead_fraction (latents that never fired in
    the TopK code over the last max(1, steps // 10) training batches)."""
    d_sae = cfg.check_widths(d_in, d_out)
    torch.manual_seed(cfg.seed)
    dev = cfg.device
    tc = TopKTranscoder(d_in, d_out, d_sae, cfg.k).to(dev)

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = next(batches)
        _check_batch(x, y, d_in, d_out)
        return x.to(dev, torch.float32), y.to(dev, torch.float32)

    with torch.no_grad():
        first = [draw() for _ in range(cfg.norm_batches)]
        tc.scale_in.fill_(d_in ** 0.5 / torch.stack([x.norm(dim=-1).mean() for x, _ in first]).mean())
        tc.scale_out.fill_(d_out ** 0.5 / torch.stack([y.norm(dim=-1).mean() for _, y in first]).mean())
        tc.b_in.copy_(torch.stack([x.mean(0) for x, _ in first]).mean(0) * tc.scale_in)
        tc.b_dec.copy_(torch.stack([y.mean(0) for _, y in first]).mean(0) * tc.scale_out)
        del first
    opt = torch.optim.Adam(tc.parameters(), lr=cfg.lr)
    tail = max(1, cfg.steps // 10)
    fired = torch.zeros(d_sae, dtype=torch.bool, device=dev)
    bar = progress(range(cfg.steps), desc="Training transcoder", mininterval=1.0)
    for step in bar:
        x, y = draw()
        ys = y * tc.scale_out
        f = tc.encode(x, topk=True)
        err = (ys - tc.decode_normalised(f)).pow(2).sum()
        loss = err / (ys - ys.mean(0)).pow(2).sum().clamp_min(1e-12)  # the batch's FVU
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tc.normalise_decoder()
        if step >= cfg.steps - tail:
            fired |= (f > 0).any(0)
        if step % max(1, cfg.steps // 100) == 0 or step == cfg.steps - 1:
            bar.set_postfix(fvu=f"{loss.item():.4f}", refresh=False)
    tc.threshold.fill_(calibrate_threshold(tc, (draw()[0] for _ in range(cfg.threshold_batches))))
    with torch.no_grad():
        x, y = draw()
        f = tc.encode(x)
        metrics = {"fvu": fvu(y, tc.decode(f)), "fvu_topk": fvu(y, tc(x, topk=True)),
                   "l0": (f > 0).float().sum(-1).mean().item(), "dead_fraction": (~fired).float().mean().item(),
                   "threshold": tc.threshold.item(), "d_in": d_in, "d_out": d_out, "d_sae": d_sae, "k": cfg.k}
    return tc.eval(), metrics


@torch.no_grad()
def calibrate_threshold(tc: TopKTranscoder, xs) -> float:
    """Mean over batches x (B, d_in) of the smallest pre-activation BatchTopK keeps (the
    (k * B)-th largest positive one of the batch): with it a row's L0 is k on average."""
    lows = []
    for x in xs:
        flat = tc.pre_acts(x).flatten()
        kept = flat.topk(min(tc.k * len(x), flat.numel()), sorted=False).values
        kept = kept[kept > 0]
        if len(kept):
            lows.append(kept.min().item())
    return sum(lows) / len(lows) if lows else 0.0


def save_transcoder(model: TopKTranscoder, out: str | Path, metadata: dict, cfg: TranscoderConfig | None = None,
                    metrics: dict | None = None, overwrite: bool = False) -> None:
    """Save `model` as a SAELens `jumprelu_transcoder` folder (weights folded to raw units;
    `metadata`: JSON values, e.g. hook_name, hook_name_out, model_name), plus
    train_config.json and metrics.json when given. Written beside `out` and moved into place,
    so a failed write leaves nothing at `out`; a saelab-trained folder there is replaced only
    with `overwrite`, any other non-empty folder is refused."""
    from sae_lens import JumpReLUTranscoder, JumpReLUTranscoderConfig
    from sae_lens.saes.sae import SAEMetadata

    from sae.train import TRAINED_FILES, is_trained_folder

    if model.threshold < 0:
        raise ValueError("the transcoder's threshold is not calibrated (train it with train_transcoder_on, or "
                         "set it with calibrate_threshold) before saving")
    out = Path(out)
    claim_out_dir(out, "a transcoder", is_trained_folder, overwrite, owns=lambda f: TRAINED_FILES)
    meta = {**metadata, "trained_as": TRAINED_AS, "k": model.k}
    sl_cfg = JumpReLUTranscoderConfig(d_in=model.d_in, d_sae=model.d_sae, d_out=model.d_out,
                                      apply_b_dec_to_input=False, normalize_activations="none",
                                      metadata=SAEMetadata(**meta))
    sl = JumpReLUTranscoder(sl_cfg)
    sl.load_state_dict({k: v.detach().cpu().float().contiguous() for k, v in model.folded().items()})
    with building(out) as tmp:
        sl.save_model(tmp)
        if cfg is not None:
            (tmp / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))


def load_transcoder(path: str | Path, device: str = "cpu"):
    """The SAELens transcoder saved at `path` (any of SAELens' transcoder architectures):
    `.encode(x (B, d_in)) -> (B, d_sae)`, `.decode(f) -> (B, d_out)`, raw units. The folder
    checks are `sae.load.load_sae_folder`'s; here only that it holds a transcoder."""
    from sae.load import load_sae_folder

    tc = load_sae_folder(path, device)
    arch = json.loads((Path(path) / "cfg.json").read_text()).get("architecture")
    if "transcoder" not in str(arch):
        raise ValueError(f"{path} holds a {arch!r}, not a transcoder; train one with sae.transcoder.train_transcoder")
    return tc


class _HookView:
    """One cache seen as if it held only `hook`: `stream_shuffled` reads a list of
    token-aligned caches in lockstep by one hook name; two views of the same cache make it
    yield (rows of hook_in, the same rows of hook_out)."""

    def __init__(self, cache, hook: str):
        self._cache, self._hook = cache, hook

    def __getattr__(self, name):
        return getattr(self._cache, name)

    def check_hook(self, hook: str) -> None:
        self._cache.check_hook(self._hook)

    def read_block(self, hook, block, keep):
        return self._cache.read_block(self._hook, block, keep)

    def read_block_into(self, hook, block, keep, out):
        return self._cache.read_block_into(self._hook, block, keep, out)


def shuffled_pairs(cache, hook_in: str, hook_out: str, batch_size: int, buffer_rows: int = 262_144, seed: int = 0,
                   where=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches (x (B, d_model) of hook_in, y (B, d_model) of hook_out, the
    same rows) of an open cache: its reader's shuffle (bounded by buffer_rows, seeded,
    filtered by `where`), reading both hooks in lockstep."""
    from activations.cache.streams import stream_shuffled

    return stream_shuffled([_HookView(cache, hook_in), _HookView(cache, hook_out)], hook_in, batch_size,
                           max(buffer_rows, batch_size), seed, where, None)


def train_transcoder(cache_path: str | Path, hook_in: str, hook_out: str, cfg: TranscoderConfig, out: str | Path,
                     where=None, overwrite: bool = False) -> dict:
    """Train a transcoder from `hook_in`'s rows of an activation cache to the same rows of
    `hook_out` (optionally only the rows passing `where`, as the cache reader filters), save it
    to `out` (see `save_transcoder`) and return its metrics (their fresh batch is a reshuffle of
    the cache's rows: a training-set fit)."""
    from activations.cache import open_cache
    from sae.train import TRAINED_FILES, is_trained_folder

    out = Path(out)
    claim_out_dir(out, "a transcoder", is_trained_folder, overwrite, owns=lambda f: TRAINED_FILES)
    with open_cache(cache_path) as cache:
        pairs = shuffled_pairs(cache, hook_in, hook_out, cfg.batch_size, cfg.buffer_rows, cfg.seed, where)
        tc, metrics = train_transcoder_on(pairs, cache.d_model, cache.d_model, cfg)
        meta = {"hook_name": hook_in, "hook_name_out": hook_out, "model_name": cache.meta.get("model"),
                "dataset_path": str(cache_path), "context_size": None}
    metrics = {"hook_in": hook_in, "hook_out": hook_out, **metrics, "train_rows": cfg.steps * cfg.batch_size}
    save_transcoder(tc, out, meta, cfg, metrics, overwrite=overwrite)
    return metrics
