"""The config of the features and steer stages (`features:` in a run config), and the
components patched at every layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from features.reason_score import ReasonScoreConfig

COMPONENTS = ("attn_out", "mlp_out", "resid_post")
"""Hook components patched at every layer (attention out, MLP out, residual)."""


@dataclass
class ElicitConfig:
    """The features and steer stages."""

    variants: list[str] = field(default_factory=list)
    """Variants to patch and steer (each against the base); empty: none."""
    k: int = 2
    """Chain length of the probe problems."""
    n: int = 200
    """Held-out problems (and at most this many of a variant's training problems)."""
    n_choose: int = 100
    """Other held-out problems, used only to choose latents and steering vectors."""
    reason_score: ReasonScoreConfig = field(default_factory=ReasonScoreConfig)
    """Which positions count as reasoning for ReasonScore."""
    top: int = 20
    """Latents listed per score in the tables."""
    probe_top: int = 16
    """Latents in the sparse value probe (against a dense probe on the raw activation)."""
    causal_candidates: int = 16
    """Top latents by attribution (first-order effect) checked by exact ablation."""
    patch_roles: list[str] = field(default_factory=lambda: ["question", "step", "last"])
    """Position roles patched (question, step, answer, last = the answer-prefix token, all)."""
    latent_counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128])
    """Numbers of most-grown latents ablated (the steering strengths of that intervention)."""
    alphas: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    """Scales of the difference-of-means vector."""
    clamp_latents: int = 8
    """How many of the base's top ReasonScore latents are clamped."""
    clamp_strengths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    """Clamp values as multiples of each latent's largest activation at the answer position."""
    validation_counts: list[int] = field(default_factory=lambda: [4, 16, 64])
    """Top-ReasonScore latents ablated in the base (causal validation), against random ones."""
    null_draws: int = 20
    """Draws of each control (random latents, random direction) per intervention and
    strength: the null distribution an intervention is read against (held-out set only)."""
    control_pool: int = 8
    """A random-latent control draws each latent among this many unused latents nearest in
    firing frequency to the one it replaces (1: the nearest only, the same latents every draw)."""

    def __post_init__(self):
        if min(self.n, self.n_choose, self.k, self.top) < 1:
            raise ValueError("features: n, n_choose, k and top must be >= 1")
        if not self.latent_counts or min(self.latent_counts) < 1:
            raise ValueError("features.latent_counts must be a non-empty list of counts >= 1")
        if self.control_pool < 1:
            raise ValueError(f"features.control_pool must be >= 1, got {self.control_pool}")
        if self.null_draws < 0:
            raise ValueError(f"features.null_draws must be >= 0 (0: no null distributions), got {self.null_draws}")
