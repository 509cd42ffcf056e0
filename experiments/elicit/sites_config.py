"""The `elicit` section of a run config: the elicit stage's training token set, sites, SAEs
and interventions (`experiments.elicit.sites_stage`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from activations.cache import CacheWriteConfig
from experiments.cache_set import CacheSetConfig
from experiments.tasks.arithmetic import Split
from sae.config import SAETrainConfig
from sae.crosscoder import CrosscoderConfig
from sae.transcoder import TranscoderConfig


@dataclass
class TrainTokens(CacheSetConfig):
    """The elicit SAEs' token set: the cache set's fields, with its own defaults (~2.0M
    tokens: 5 ks x 4400 examples x 3 texts x ~31 tokens)."""

    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Chain lengths of the examples (every k the base was trained on)."""
    n_per_k: int = 4400
    """Examples per chain length (each gives one sequence per text variant)."""
    split: Split = "train"
    """Task split: train (the probe items are eval-split problems, never trained on)."""


@dataclass
class SitesConfig:
    """The elicit stage: SAEs at the sites where the change lives, trained on a token set of
    their own, the latent-patching ladder and the base-free interventions."""

    variants: list[str] = field(default_factory=list)
    """Variants elicited against the base (empty: the stage does nothing)."""
    sites: list[str] = field(default_factory=lambda: ["blocks.1.hook_resid_post", "blocks.1.hook_mlp_out"])
    """Hooks with an SAE of each model (`{l}` expands to every layer), e.g.
    blocks.{l}.hook_resid_post, blocks.{l}.hook_attn_out, blocks.{l}.hook_mlp_out."""
    tokens: TrainTokens = field(default_factory=TrainTokens)
    """The SAEs' training token set: train-split problems (never the probe items, which are
    eval-split), every k, gold, paraphrased and corrupted CoTs."""
    write: CacheWriteConfig = field(default_factory=lambda: CacheWriteConfig(shard_sequences=8192, batch_size=256))
    """How the training caches are stored (its hooks are replaced by `sites`)."""
    other_fraction: float = 0.05
    """Fraction of the rows that are not the answer prefix kept for SAE training (every
    answer-prefix row is kept; 1: all rows, 0: the answer prefix only). The interventions act
    at the answer prefix, where ~1 row in 31 of a sequence lies."""
    sae: SAETrainConfig = field(default_factory=lambda: SAETrainConfig(
        architecture="topk", expansion=8, k=16, lr=1e-3, steps=600, batch_size=4096, buffer_rows=262_144,
        norm_batches=10, checkpoints=0))
    """Training of every site SAE (each model's, same seed and data order: paired)."""
    crosscoder_sites: list[str] = field(default_factory=list)
    """Hooks with a base x variant crosscoder per variant (`{l}`: every layer), trained on the
    same rows as the SAEs; its fine-tuned-leaning latents are ablated in the variant alone."""
    crosscoder: CrosscoderConfig = field(default_factory=lambda: CrosscoderConfig(
        expansion=2, k=16, lr=5e-4, steps=600, batch_size=4096, buffer_rows=262_144, norm_batches=10,
        resample_every=50, dead_steps=25))
    """Training of every site crosscoder (BatchTopK with the AuxK dead-latent loss and resampling).
    2x, not the site SAEs' 8x: on the default organisms' answer-prefix rows a 8x crosscoder kept
    59% of its latents dead even with resampling, a 2x one 19% with AuxK alone and 0% with it."""
    transcoders: list[int] = field(default_factory=list)
    """Layers whose MLP gets a transcoder (MLP input `blocks.L.hook_resid_mid` to MLP output
    `blocks.L.hook_mlp_out`, both cached): the variant's (the base's too with `train_base`),
    scored in the site sweep; the variant's latents carrying the shortcut are ablated."""
    transcoder: TranscoderConfig = field(default_factory=lambda: TranscoderConfig(
        expansion=8, k=16, lr=1e-3, steps=600, batch_size=4096, buffer_rows=262_144, norm_batches=10))
    """Training of every transcoder."""
    train_base: bool = True
    """Train the base's SAE at every site, and its transcoders, too (their quality beside the
    variant's in the site sweep). The ladder and the interventions read only the variant's
    dictionaries: the demo skips it."""
    ladder_counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128, 256])
    """N of the latent-patching ladder: the N latents of largest attribution patched from the
    base (and all of them, with and without the error term)."""
    counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024])
    """Latent-set sizes tried by each base-free intervention (chosen on the choice set)."""
    max_accuracy_drop: float = 0.05
    """A strength is eligible only if choice-set accuracy stays within this of the variant's."""
    null_draws: int = 20
    """Draws of each intervention's control at its chosen size (held-out set)."""
    control_pool: int = 8
    """Random latents are drawn among this many unused latents nearest in firing frequency."""

    def __post_init__(self):
        if not 0 <= self.other_fraction <= 1:
            raise ValueError(f"elicit.other_fraction must be in [0, 1], got {self.other_fraction}")
        if not self.ladder_counts or not self.counts or min(self.ladder_counts + self.counts) < 1:
            raise ValueError("elicit.ladder_counts and elicit.counts must be non-empty lists of counts >= 1")
        if self.null_draws < 1 or self.control_pool < 1:
            raise ValueError("elicit.null_draws and elicit.control_pool must be >= 1")
        if self.tokens.split != "train":
            raise ValueError("elicit.tokens.split must be train: the probe items are eval-split problems and "
                             "must never be trained on")
