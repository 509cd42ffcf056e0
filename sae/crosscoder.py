"""A BatchTopK crosscoder for model diffing (SAELens has none).

One shared latent code read from both models' activations of the same token, one decoder
per model (Anthropic 2024, "Sparse crosscoders for cross-layer features and model diffing"):

    f(x) = BatchTopK( sum_m (s_m x_m - b_dec_m) @ W_enc[m] + b_enc )        (B, d_sae)
    x_hat_m = (f @ W_dec[:, m] + b_dec_m) / s_m                             (B, d_in)

with s_m the per-model normalisation (SAELens' rule: sqrt(d_in) / E||x_m||), kept as a
buffer rather than folded. Latents are chosen by f_j * sum_m ||W_dec[j, m]||, so a latent
cannot win by shrinking its decoders, and BatchTopK keeps the k * B largest over the batch
(Minder et al. 2025: L1 crosscoders invent fine-tuned-only latents that BatchTopK mostly
does not). At inference a token keeps the latents above `threshold`: the smallest score
BatchTopK keeps, averaged over `threshold_batches` batches after training (Bussmann et al.
2024 keep a running mean during training; after short runs that mean still weighs the
first steps' small scores and the inference L0 came out 2x k, so it is calibrated on the
final weights instead).

Dead latents are revived by the AuxK loss (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders", App. A.2; Bussmann et al. use it for BatchTopK): a latent that has not fired
for `dead_steps` steps is dead (counted in steps, as SAELens' trainer does), and each token's
top `aux_k` dead latents by the same score reconstruct the main residual e = x - x_hat (both
models, normalised units, no decoder bias); loss += aux_coefficient * ||e - e_hat||^2 /
||e||^2 (means over the batch). Their activations are taken after the ReLU, as Gao et al.,
EleutherAI's `sae` and Bussmann et al.'s code do; SAELens' `calculate_topk_aux_loss` takes
them before it, which also reaches latents negative on every token but, on the shared and
model-specific features of tests/test_crosscoder.py (1500 steps, seeds 0-2), left 17-29 of
64 latents dead where training without AuxK left 12 (they settle into fitting the residual
with negative activations); the ReLU form left 8-11. Where AuxK is not enough (many latents
on rows of low diversity, e.g. the elicit stage's answer-prefix rows), `resample_every`
re-initialises the dead latents on the worst-reconstructed rows (`resample_dead`).

Saved self-describing like SAELens' format: `cfg.json` + `crosscoder_weights.safetensors`,
plus `train_config.json` and `metrics.json`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from activations.atomic import building, claim_out_dir
from activations.progress import progress
from sae.config import CoderTrainConfig, SAETrainConfig

WEIGHTS = "crosscoder_weights.safetensors"
ARCHITECTURE = "batchtopk_crosscoder"


@dataclass
class CrosscoderConfig(CoderTrainConfig):
    """One crosscoder's training run: the fields an SAE's run has too (`CoderTrainConfig`,
    declared and documented once there), and the crosscoder's own. It has none of the
    SAE-only fields (architecture: always BatchTopK; no sparsity coefficient, SAELens
    options, autocast or checkpoints)."""

    threshold_batches: int = 10
    """Batches of training rows that calibrate the inference threshold after training."""
    aux_coefficient: float = 1 / 32
    """Weight of the AuxK dead-latent loss (Gao et al. 2024's 1/32); 0: none (training as
    before the loss was added, bit for bit)."""
    aux_k: int = 256
    """Dead latents each token's AuxK reconstruction uses (at most d_sae // 2 and the number
    dead; with fewer dead than that the loss is scaled down in proportion, as SAELens does)."""
    dead_steps: int = 50
    """Steps (batches) without firing after which a latent counts as dead for the AuxK loss
    (SAELens' `dead_feature_window`, whose default 1000 suits runs of many thousand steps,
    not crosscoder runs of a few hundred)."""
    resample_every: int = 0
    """Every this many steps (0: never), latents dead for `dead_steps` are re-initialised on
    the batch's worst-reconstructed rows (Bricken et al. 2023's resampling; see
    `resample_dead`), until the last `resample_every` steps of training, which settle."""
    # The crosscoder's own defaults of two shared fields (documented in CoderTrainConfig).
    lr: float = 5e-4
    norm_batches: int = 20

    _kind = "crosscoder"
    _at_least_one = (*CoderTrainConfig._at_least_one, "threshold_batches", "aux_k", "dead_steps")

    def __post_init__(self):
        super().__post_init__()
        if not self.aux_coefficient >= 0:
            raise ValueError(f"crosscoder aux_coefficient must be >= 0, got {self.aux_coefficient}")
        if self.resample_every < 0:
            raise ValueError(f"crosscoder resample_every must be >= 0 (0: no resampling), got {self.resample_every}")

    @classmethod
    def from_sae(cls, sae: SAETrainConfig, flag: str = "", **own) -> "CrosscoderConfig":
        """The crosscoder run with the settings an SAE run `sae` shares with it, and `own`
        for the crosscoder's own fields. An SAE-only setting away from its default is refused
        (named with the prefix `flag`, e.g. "--"), not silently dropped."""
        shared = {f.name for f in dataclasses.fields(CoderTrainConfig)}
        default = type(sae)()
        ignored = [f.name for f in dataclasses.fields(sae)
                   if f.name not in shared and getattr(sae, f.name) != getattr(default, f.name)]
        if ignored:
            raise ValueError(f"{', '.join(flag + n for n in ignored)} do not apply to a crosscoder (BatchTopK, no "
                             "checkpoints); leave them out")
        return cls(**{n: getattr(sae, n) for n in shared}, **own)


class Crosscoder(nn.Module):
    """Shapes: W_enc (n_models, d_in, d_sae), W_dec (d_sae, n_models, d_in), b_dec
    (n_models, d_in), b_enc (d_sae,), scale (n_models,)."""

    def __init__(self, d_in: int, d_sae: int, k: int, n_models: int = 2, models: list[str] | None = None):
        super().__init__()
        self.d_in, self.d_sae, self.k, self.n_models = d_in, d_sae, k, n_models
        self.models = models or [f"model{m}" for m in range(n_models)]
        # Decoder rows of norm 0.1 per model, encoder its transpose (the usual initialisation).
        w = torch.randn(d_sae, n_models, d_in)
        w = 0.1 * w / w.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.permute(1, 2, 0).clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(n_models, d_in))
        self.register_buffer("scale", torch.ones(n_models))
        self.register_buffer("threshold", torch.tensor(-1.0))  # < 0: not estimated yet

    def decoder_norms(self) -> torch.Tensor:
        """(d_sae, n_models): ||W_dec[j, m]|| in normalised units."""
        return self.W_dec.norm(dim=-1)

    def scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, n_models, d_in) raw -> (pre-activations after ReLU, selection scores), both (B, d_sae)."""
        xs = x * self.scale[:, None] - self.b_dec
        pre = torch.relu(torch.einsum("bmd,mds->bs", xs, self.W_enc) + self.b_enc)
        return pre, pre * self.decoder_norms().sum(-1)

    def encode(self, x: torch.Tensor, batch_topk: bool = False) -> torch.Tensor:
        """Latent activations (B, d_sae): by BatchTopK over the batch when training (or asked),
        else by the learned threshold, so a token's code does not depend on its batch."""
        pre, score = self.scores(x)
        return pre * self.select(score, batch_topk)

    def select(self, score: torch.Tensor, batch_topk: bool) -> torch.Tensor:
        """Boolean (B, d_sae): the k * B largest positive scores of the batch, or those above
        the threshold."""
        if batch_topk or self.threshold < 0:
            flat = score.flatten()
            keep = torch.zeros_like(flat, dtype=torch.bool)
            keep[flat.topk(min(self.k * len(score), flat.numel()), sorted=False).indices] = True
            return keep.view_as(score) & (score > 0)
        return score > self.threshold

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """f (B, d_sae) -> raw-unit reconstructions (B, n_models, d_in)."""
        return (torch.einsum("bs,smd->bmd", f, self.W_dec) + self.b_dec) / self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def config(self) -> dict:
        return {"architecture": ARCHITECTURE, "d_in": self.d_in, "d_sae": self.d_sae, "k": self.k,
                "n_models": self.n_models, "models": self.models}


def _estimate_scale(batches, n: int, d_in: int) -> torch.Tensor:
    """Per model sqrt(d_in) / E||x_m|| over `n` batches (SAELens' `expected_average_only_in`)."""
    norms = torch.stack([next(batches).norm(dim=-1).mean(0) for _ in range(n)]).mean(0)
    return d_in ** 0.5 / norms


def aux_loss(cc: Crosscoder, pre: torch.Tensor, score: torch.Tensor, residual: torch.Tensor, dead: torch.Tensor,
             aux_k: int) -> torch.Tensor | None:
    """The AuxK loss (unweighted; None when no latent is dead): each token's top
    min(aux_k, d_sae // 2) `dead` latents by `score`, with their activations `pre` (after the
    ReLU, both (B, d_sae), from `Crosscoder.scores`), decode the `residual` (B, n_models, d_in)
    without the decoder bias; the squared error over that of predicting 0. As SAELens, it is
    scaled by n_dead / k_aux when fewer latents than k_aux are dead."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return None
    k_aux = max(1, min(aux_k, cc.d_sae // 2))
    scale = min(n_dead / k_aux, 1.0)
    top = torch.where(dead, score, -torch.inf).topk(min(k_aux, n_dead), dim=-1, sorted=False).indices
    acts = torch.zeros_like(pre).scatter(-1, top, pre.gather(-1, top))
    e = residual.detach()
    e_hat = torch.einsum("bs,smd->bmd", acts, cc.W_dec)
    return scale * (e_hat - e).pow(2).sum((-2, -1)).mean() / e.pow(2).sum((-2, -1)).mean().clamp_min(1e-12)


@torch.no_grad()
def resample_dead(cc: Crosscoder, opt: torch.optim.Optimizer, residual: torch.Tensor, dead: torch.Tensor,
                  generator: torch.Generator) -> int:
    """Re-initialise the `dead` latents (bool (d_sae,)) on rows of the batch drawn with
    probability proportional to their squared reconstruction error `residual` (B, n_models,
    d_in, normalised units): Bricken et al. 2023 ("Towards monosemanticity", resampling), with
    the residual rather than the input as the direction, as Gao et al.'s AuxK aims the dead
    latents. Each revived latent j gets decoder rows W_dec[j] = the row's residual scaled to
    the mean joint decoder norm of the live latents, encoder columns the same direction at 0.2x
    the live encoder norm (Bricken et al.'s factor), b_enc[j] = 0, and its Adam moments
    zeroed (stale moments would push it straight back). Returns how many were revived."""
    idx = dead.nonzero().flatten()
    if len(idx) == 0 or len(idx) == cc.d_sae:
        return 0
    err = residual.pow(2).sum((-2, -1))
    if not float(err.sum()) > 0:
        return 0
    rows = torch.multinomial(err.cpu().double(), len(idx), replacement=len(idx) > len(err), generator=generator)
    e = residual[rows.to(residual.device)]                                     # (n, n_models, d_in)
    e = e / e.flatten(1).norm(dim=-1).clamp_min(1e-12)[:, None, None]          # unit joint norm
    live = ~dead
    dec_norm = cc.W_dec[live].flatten(1).norm(dim=-1).mean()
    enc_norm = cc.W_enc[:, :, live].permute(2, 0, 1).flatten(1).norm(dim=-1).mean()
    cc.W_dec[idx] = e * dec_norm
    cc.W_enc[:, :, idx] = (e * 0.2 * enc_norm).permute(1, 2, 0)
    cc.b_enc[idx] = 0.0
    for p, sl in ((cc.W_dec, (idx,)), (cc.W_enc, (slice(None), slice(None), idx)), (cc.b_enc, (idx,))):
        state = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][sl] = 0.0
    return len(idx)


def train_crosscoder_on(batches, d_in: int, cfg: CrosscoderConfig, models: list[str],
                        init: Crosscoder | None = None) -> tuple[Crosscoder, dict]:
    """Train on an endless iterator of (B, len(models), d_in) batches; returns the crosscoder
    and its training-fit metrics (over the last 10% of steps). `init`: start from a copy of
    this crosscoder's weights instead of a fresh initialisation (its normalisation is
    estimated again)."""
    torch.manual_seed(cfg.seed)
    if init is None:
        cc = Crosscoder(d_in, cfg.expansion * d_in, cfg.k, len(models), models).to(cfg.device)
    else:
        have = (init.d_in, init.d_sae, init.k, init.n_models)
        want = (d_in, cfg.expansion * d_in, cfg.k, len(models))
        if have != want:
            raise ValueError(f"init crosscoder has (d_in, d_sae, k, n_models) {have}; config and data: {want}")
        cc = copy.deepcopy(init).to(cfg.device)
        cc.models = list(models)
    cc.scale.copy_(_estimate_scale(batches, cfg.norm_batches, d_in).to(cfg.device))
    opt = torch.optim.Adam(cc.parameters(), lr=cfg.lr)
    tail = max(1, cfg.steps // 10)
    sse = sst = l0 = 0.0
    fired = torch.zeros(cc.d_sae, dtype=torch.bool, device=cfg.device)
    # Steps since each latent last fired (SAELens' n_forward_passes_since_fired).
    since_fired = torch.zeros(cc.d_sae, dtype=torch.long, device=cfg.device)
    revived = 0
    g = torch.Generator().manual_seed(cfg.seed)
    bar = progress(range(cfg.steps), desc="Training crosscoder", mininterval=1.0)
    for step in bar:
        x = next(batches).to(cfg.device)
        xs = x * cc.scale[:, None]  # the loss in normalised units, as SAELens trains
        pre, score = cc.scores(x)
        keep = cc.select(score, batch_topk=True)
        f = pre * keep
        xs_hat = torch.einsum("bs,smd->bmd", f, cc.W_dec) + cc.b_dec
        loss = (xs - xs_hat).pow(2).sum(-1).mean()  # summed over models and dimensions
        if cfg.aux_coefficient > 0:
            aux = aux_loss(cc, pre, score, xs - xs_hat, since_fired >= cfg.dead_steps, cfg.aux_k)
            if aux is not None:
                loss = loss + cfg.aux_coefficient * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            since_fired += 1
            since_fired[(f > 0).any(0)] = 0
            if cfg.resample_every and step % cfg.resample_every == cfg.resample_every - 1 \
                    and step < cfg.steps - cfg.resample_every:
                n = resample_dead(cc, opt, (xs - xs_hat).detach(), since_fired >= cfg.dead_steps, g)
                since_fired[since_fired >= cfg.dead_steps] = 0  # a fresh window for the revived
                revived += n
            if step >= cfg.steps - tail:
                sse += (xs - xs_hat).pow(2).sum().item()
                sst += (xs - xs.mean(0)).pow(2).sum().item()
                l0 += (f > 0).float().sum(-1).mean().item() / tail
                fired |= (f > 0).any(0)
        if step % max(1, cfg.steps // 100) == 0 or step == cfg.steps - 1:
            ev = 1 - (xs - xs_hat).pow(2).sum() / (xs - xs.mean(0)).pow(2).sum()
            bar.set_postfix(loss=f"{loss.item():.4g}", l0=f"{(f > 0).float().sum(-1).mean().item():.1f}",
                            ev=f"{ev.item():.3f}", refresh=False)
    cc.threshold.fill_(calibrate_threshold(cc, (next(batches).to(cfg.device) for _ in range(cfg.threshold_batches))))
    return cc, {"train_explained_variance": 1 - sse / sst, "train_l0": l0,
                "train_dead_fraction": (~fired).float().mean().item(), "resampled": revived}


@torch.no_grad()
def calibrate_threshold(cc: Crosscoder, batches) -> float:
    """Mean over batches of the smallest score BatchTopK keeps: with it, a token's inference
    L0 is k on average over rows like these."""
    lows = []
    for x in batches:
        _, score = cc.scores(x)
        kept = score[cc.select(score, batch_topk=True)]
        if len(kept):
            lows.append(kept.min().item())
    return sum(lows) / len(lows) if lows else 0.0


@torch.no_grad()
def crosscoder_metrics(cc: Crosscoder, batches) -> dict:
    """Inference-mode (threshold) L0, explained variance per model and dead fraction (latents
    that fire on none of the rows: sae.diff's 'dead' class), over batches of raw paired rows
    (B, n_models, d_in)."""
    n, l0 = 0, 0.0
    fired = torch.zeros(cc.d_sae, dtype=torch.bool)
    sse = torch.zeros(cc.n_models, dtype=torch.float64)           # sum ||x_m - x_hat_m||^2
    s1 = torch.zeros(cc.n_models, cc.d_in, dtype=torch.float64)   # sum x_m
    s2 = torch.zeros(cc.n_models, dtype=torch.float64)            # sum ||x_m||^2
    for x in batches:
        x = x.to(cc.W_dec.device)
        f = cc.encode(x)
        err = (x - cc.decode(f)).double()
        n += len(x)
        l0 += (f > 0).double().sum().item()
        fired |= (f > 0).any(0).cpu()
        sse += err.pow(2).sum((0, 2)).cpu()
        s1 += x.double().sum(0).cpu()
        s2 += x.double().pow(2).sum((0, 2)).cpu()
    if not n:
        raise ValueError("no rows to evaluate the crosscoder on (check the filter)")
    sst = s2 - s1.pow(2).sum(-1) / n
    out = {"n": n, "l0": l0 / n}
    out |= {f"explained_variance_{m}": float(1 - sse[i] / sst[i]) for i, m in enumerate(cc.models)}
    out["dead_fraction"] = (~fired).double().mean().item()
    return out


def train_crosscoder(base_cache: str | Path, finetuned_cache: str | Path, hook: str, cfg: CrosscoderConfig,
                     out: str | Path, names: tuple[str, str] = ("base", "finetuned"), where=None,
                     overwrite: bool = False) -> dict:
    """Train a crosscoder on the paired (token-aligned) caches' rows of `hook` and save it to
    `out` (an SAE or crosscoder saelab trained there is replaced only with `overwrite`)."""
    from activations.cache import open_paired
    from sae.train import TRAINED_FILES, is_trained_folder

    claim_out_dir(Path(out), "a crosscoder", is_trained_folder, overwrite, owns=lambda f: TRAINED_FILES)
    with open_paired(base_cache, finetuned_cache) as pair:
        pair.a.check_hook(hook)
        pairs = pair.shuffled(hook, cfg.batch_size, max(cfg.buffer_rows, cfg.batch_size), cfg.seed, where)
        cc, metrics = train_crosscoder_on((torch.stack(p, 1) for p in pairs), pair.a.d_model, cfg, list(names))
        provenance = {"hook_name": hook, "datasets": [str(base_cache), str(finetuned_cache)],
                      "model_names": [pair.a.meta.get("model"), pair.b.meta.get("model")]}
    metrics = {"hook": hook, **metrics, "train_rows": cfg.steps * cfg.batch_size}
    save_crosscoder(cc, out, provenance, cfg, metrics, overwrite=overwrite)
    return metrics


def save_crosscoder(cc: Crosscoder, out: str | Path, metadata: dict, cfg: CrosscoderConfig | None = None,
                    metrics: dict | None = None, overwrite: bool = False) -> None:
    from safetensors.torch import save_file

    from sae.train import TRAINED_FILES, is_trained_folder

    out = Path(out)
    # A crosscoder saved without a training config (no train_config.json) is still ours.
    claim_out_dir(out, "a crosscoder", lambda f: is_trained_folder(f) or _is_crosscoder(f), overwrite,
                  owns=lambda f: TRAINED_FILES)
    with building(out) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in cc.state_dict().items()}, str(tmp / WEIGHTS))
        (tmp / "cfg.json").write_text(json.dumps({**cc.config(), "metadata": metadata}, indent=1))
        if cfg is not None:
            (tmp / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        if metrics is not None:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))


def _is_crosscoder(folder: Path) -> bool:
    try:
        return json.loads((folder / "cfg.json").read_text()).get("architecture") == ARCHITECTURE
    except (OSError, ValueError, AttributeError):
        return False


def load_crosscoder(path: str | Path, device: str = "cpu") -> Crosscoder:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "cfg.json").is_file() or not (path / WEIGHTS).is_file():
        raise ValueError(f"{path} is not a saelab crosscoder folder (needs cfg.json and {WEIGHTS})")
    from sae.load import damaged_files

    with damaged_files(path, "crosscoder", "train it again"):
        cfg = json.loads((path / "cfg.json").read_text())
        if not isinstance(cfg, dict):
            raise ValueError("cfg.json is not a JSON object")
        if cfg.get("architecture") != ARCHITECTURE:
            raise ValueError(f"{path} holds a {cfg.get('architecture')!r}, not a {ARCHITECTURE}")
        cc = Crosscoder(cfg["d_in"], cfg["d_sae"], cfg["k"], cfg["n_models"], cfg["models"])
        cc.load_state_dict(load_file(str(path / WEIGHTS)))
    cc.metadata = cfg.get("metadata", {})
    return cc.to(device)
