"""Training an SAE with SAELens' trainer and architectures, from an activation cache.

Any architecture in SAELens' training registry, by name (`standard`, `topk`, `batchtopk`,
`jumprelu`, `gated`, `matryoshka_batchtopk`, ...). The cache's endless shuffled iterator
is the trainer's data provider; SAELens estimates and folds the activation normalisation.
The result is saved in SAELens' inference format (`cfg.json` + `sae_weights.safetensors`,
metadata filled from the cache) plus `train_config.json` and `metrics.json`, under a
temporary name renamed when complete.

Checkpoints (SAELens' own: weights, optimizer, schedulers, dead-latent statistics, the
activation scaler) go to `<out>.checkpoints/` while training runs; a run started again with
the same config and cache resumes from the last complete one, skipping the batches already
seen, so an interrupted and resumed run ends with the weights of an uninterrupted one. The
folder is removed when the SAE is saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import warnings
from pathlib import Path
from unittest import mock

import torch

from activations.atomic import building, claim_out_dir, write_json_atomic
from activations.progress import log, progress
from sae.config import SAETrainConfig, training_classes
from activations.cache import open_cache
from activations.cache.format import INDEX


def build_training_sae(cfg: SAETrainConfig, d_in: int):
    """The SAELens training SAE for `cfg`, freshly initialised (seeded)."""
    cfg.check()
    cls, cfg_cls = training_classes(cfg.architecture)
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    d_sae = cfg.expansion * d_in
    kw = {"d_in": d_in, "d_sae": d_sae, "normalize_activations": "expected_average_only_in"}
    if "k" in fields:
        kw["k"] = cfg.k
    if "l1_coefficient" in fields:
        kw["l1_coefficient"] = cfg.sparsity_coefficient
    if "l0_coefficient" in fields:
        kw["l0_coefficient"] = cfg.sparsity_coefficient
    if "matryoshka_widths" in fields:
        kw["matryoshka_widths"] = [d_sae // 4, d_sae // 2, d_sae]
    kw = {k: v for k, v in kw.items() if k in fields} | cfg.options
    torch.manual_seed(cfg.seed)
    return cls(cfg_cls(**kw))


@torch.no_grad()
def l0_and_fvu(sae, x: torch.Tensor) -> tuple[float, float]:
    """Mean active latents per row, and fraction of variance unexplained, on rows x."""
    feats = sae.encode(x)
    x_hat = sae.decode(feats)
    l0 = (feats != 0).float().sum(-1).mean().item()
    fvu = ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
    return l0, fvu


def _trainer_class():
    from sae_lens.training.sae_trainer import SAETrainer

    class Trainer(SAETrainer):
        """SAELens' trainer with the batch's L0 and explained variance beside the loss on the
        progress bar, refreshed ~100 times per run whatever its length."""

        @torch.no_grad()
        def _update_pbar(self, step_output, pbar, update_interval: int = 100):
            every = max(1, self.cfg.total_training_steps // 100)
            if self.n_training_steps % every and self.n_training_samples < self.cfg.total_training_samples:
                return
            x, x_hat = step_output.sae_in, step_output.sae_out
            ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
            l0 = (step_output.feature_acts != 0).float().sum(-1).mean()
            pbar.set_postfix(loss=f"{step_output.loss.item():.4g}", l0=f"{l0.item():.1f}", ev=f"{ev.item():.3f}",
                             refresh=False)
            pbar.update(self.n_training_samples - pbar.n)

    return Trainer


@contextlib.contextmanager
def saelens_progress():
    """SAELens' own tqdm bars (the trainer's and the normalisation estimate's) made by
    `progress` while the block runs: a bar on a terminal, throttled lines in a batch log."""
    from sae_lens.training import activation_scaler, sae_trainer

    with mock.patch.object(sae_trainer, "tqdm", progress), mock.patch.object(activation_scaler, "tqdm", progress):
        yield


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def _run_key(cache_path, hook: str, cfg: SAETrainConfig, where) -> dict:
    """What a checkpoint must match to be resumed: the config (device aside), the hook, the
    filter and the cache's content (its index names every shard with its checksum)."""
    index = (Path(cache_path) / INDEX).read_bytes()
    c = dataclasses.asdict(cfg)
    c.pop("device")
    return {"config": c, "hook": hook, "where": repr(where), "cache_index_sha1": hashlib.sha1(index).hexdigest()}


def _latest_checkpoint(ckpt: Path, key: dict) -> Path | None:
    """The newest complete checkpoint of this run, or None; refuses checkpoints of another
    run (config, hook, filter or cache changed) rather than deleting someone's work."""
    if not ckpt.exists():
        return None
    try:
        saved = json.loads((ckpt / "run.json").read_text())
    except (OSError, ValueError):
        saved = {}
    if saved != key:
        flat = lambda d: {f"{k}.{kk}": vv for k, v in d.items() for kk, vv in  # noqa: E731
                          (v.items() if isinstance(v, dict) else [("", v)])}
        a, b = flat(saved), flat(key)
        differ = sorted(k.rstrip(".") for k in set(a) | set(b) if a.get(k) != b.get(k)) or ["run.json unreadable"]
        raise ValueError(f"{ckpt} holds checkpoints of another run (differs in {', '.join(differ)}); "
                         "train with those settings to resume, or delete the folder to start afresh")
    done = [d for d in ckpt.iterdir() if d.is_dir() and d.name.isdigit() and (d / "complete").exists()]
    return max(done, key=lambda d: int(d.name), default=None)


# Every file saelab's SAE or crosscoder writers leave in an output folder (SAELens' own
# inference files, ours beside them); a folder holding anything else is not replaced.
TRAINED_FILES = {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "crosscoder_weights.safetensors",
                 "train_config.json", "metrics.json", "diff.json"}


def is_trained_folder(folder: Path) -> bool:
    """Whether `folder` holds an SAE or crosscoder that saelab trained (the only folders
    `--out` may replace): its cfg.json, weights and train_config.json."""
    folder = Path(folder)
    weights = (folder / "sae_weights.safetensors").is_file() or (folder / "crosscoder_weights.safetensors").is_file()
    return weights and (folder / "cfg.json").is_file() and (folder / "train_config.json").is_file()


def train_sae(cache_path: str | Path, hook: str, cfg: SAETrainConfig, out: str | Path, where=None,
              overwrite: bool = False) -> dict:
    """Train one SAE on `hook` of the cache at `cache_path` (rows passing `where`), save it to
    `out` in SAELens' inference format; returns its metrics. Resumes from `<out>.checkpoints/`
    when an earlier run of the same config and cache was interrupted. An SAE already at
    `out` is replaced only with `overwrite`; any other non-empty folder is refused."""
    from sae_lens import SAE
    from sae_lens.config import SAETrainerConfig

    out = Path(out)
    claim_out_dir(out, "an SAE", is_trained_folder, overwrite, owns=lambda f: TRAINED_FILES)
    cfg.check()
    ckpt = checkpoint_dir(out)
    with open_cache(cache_path) as cache:
        if hook not in cache.hooks:
            raise ValueError(f"hook {hook!r} is not in the cache {cache_path}; it holds {cache.hooks}")
        key = _run_key(cache_path, hook, cfg, where)
        resume = _latest_checkpoint(ckpt, key)
        sae = build_training_sae(cfg, cache.d_model)
        data = cache.shuffled(hook, cfg.batch_size, max(cfg.buffer_rows, cfg.batch_size), cfg.seed, where)
        trainer_cfg = SAETrainerConfig(
            total_training_samples=cfg.steps * cfg.batch_size, train_batch_size_samples=cfg.batch_size,
            lr=cfg.lr, lr_end=cfg.lr,  # lr_end=None fails with a bare AssertionError in sae-lens 6.54
            device=cfg.device, n_batches_for_norm_estimate=cfg.norm_batches, autocast=cfg.autocast,
            n_checkpoints=cfg.checkpoints, checkpoint_path=str(ckpt) if cfg.checkpoints else None)
        if cfg.checkpoints:
            ckpt.mkdir(parents=True, exist_ok=True)
            write_json_atomic(ckpt / "run.json", key)
        # SAELens writes a checkpoint's files one by one; the marker, written last, says it is whole.
        trainer = _trainer_class()(trainer_cfg, sae, data,
                                   save_checkpoint_fn=lambda checkpoint_path: checkpoint_path and
                                   (Path(checkpoint_path) / "complete").touch())
        if resume is not None:
            trainer.load_trainer_state(resume)
            sae.load_weights_from_checkpoint(resume)
            # SAELens checkpoints before counting the step it has just taken.
            trainer.n_training_steps = trainer.n_training_samples // cfg.batch_size
            trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t >= trainer.n_training_samples]
            # The same data order as an uninterrupted run: skip the normalisation batches
            # and every batch already trained on.
            for _ in range(cfg.norm_batches + trainer.n_training_steps):
                next(data)
            log(f"resuming {out} from step {trainer.n_training_steps} ({resume})")
        with saelens_progress():
            sae = trainer.fit()
        # A reshuffle of the rows the SAE trained on: training-set fit, named as such below.
        # Held-out evaluation is sae.evaluate on another token set or cache.
        fit_rows = next(cache.shuffled(hook, min(cfg.batch_size, cache.n_rows), cfg.batch_size, cfg.seed + 1, where))
        meta = cache.meta
        sae.cfg.metadata.model_name = meta.get("model")
        sae.cfg.metadata.hook_name = hook
        sae.cfg.metadata.dataset_path = str(cache_path)
        sae.cfg.metadata.context_size = None
    with building(out) as tmp:  # removed, and nothing at `out` touched, if writing fails
        sae.save_inference_model(tmp)
        # Measure what was saved: BatchTopK and Matryoshka export as JumpReLU with a learned
        # threshold, whose L0 can be far from the trained k after short runs.
        exported = SAE.load_from_disk(str(tmp), device=cfg.device)
        l0, fvu = l0_and_fvu(exported, fit_rows.to(cfg.device))
        metrics = {"hook": hook, "architecture": cfg.architecture, "d_in": exported.cfg.d_in,
                   "d_sae": exported.cfg.d_sae, "l0": l0, "train_fvu": fvu, "train_explained_variance": 1 - fvu,
                   "train_rows": cfg.steps * cfg.batch_size}
        if resume is not None:
            metrics["resumed_from_step"] = int(resume.name) // cfg.batch_size
        if "k" in {f.name for f in dataclasses.fields(type(sae.cfg))} and not cfg.k / 1.5 <= l0 <= cfg.k * 1.5:
            metrics["warning"] = f"exported L0 {l0:.1f} is off the trained k={cfg.k} by more than 1.5x"
            warnings.warn(metrics["warning"], stacklevel=2)
        (tmp / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
    shutil.rmtree(ckpt, ignore_errors=True)
    return metrics


def train_paired_saes(base_cache: str | Path, finetuned_cache: str | Path, hook: str, cfg: SAETrainConfig,
                      out_base: str | Path, out_finetuned: str | Path, where=None) -> tuple[dict, dict]:
    """The base and fine-tuned SAEs of one hook from the same initialisation and the same data
    order, so that latent i of one can be compared with latent i of the other.

    Same seed -> same initial weights; token-aligned caches (checked by `open_paired`) with
    the same layout and seed -> the shuffled reader yields the same rows in the same order."""
    from activations.cache import open_paired

    with open_paired(base_cache, finetuned_cache):  # refuses caches that are not a pair
        pass
    return (train_sae(base_cache, hook, cfg, out_base, where),
            train_sae(finetuned_cache, hook, cfg, out_finetuned, where))
