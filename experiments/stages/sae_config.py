"""The `sae` section of a run config, one for both studies (each study subclasses it only to
set its own defaults)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sae.config import SAETrainConfig
from sae.crosscoder import CrosscoderConfig


@dataclass
class FrontierPoint:
    """One SAE of the base model's frontier: an architecture and its sparsity setting."""

    architecture: str
    """A SAELens training architecture."""
    k: int | None = None
    """Active latents (topk, batchtopk, matryoshka_batchtopk); default: the `train` section's."""
    sparsity_coefficient: float | None = None
    """L1 / L0 coefficient (standard, gated, jumprelu); default: the `train` section's."""
    options: dict[str, Any] = field(default_factory=dict)
    """More SAELens config fields for this architecture (replace the `train` section's)."""

    @property
    def name(self) -> str:
        return self.architecture + (f"-k{self.k}" if self.k is not None else "") + (
            f"-c{self.sparsity_coefficient:g}" if self.sparsity_coefficient is not None else "")

    def config(self, train: SAETrainConfig) -> SAETrainConfig:
        """The training config of this point: `train` with this architecture and sparsity."""
        return dataclasses.replace(train, architecture=self.architecture, k=train.k if self.k is None else self.k,
                                   sparsity_coefficient=train.sparsity_coefficient if self.sparsity_coefficient
                                   is None else self.sparsity_coefficient, options=self.options)


@dataclass
class PretrainedSAE:
    """An SAE that is loaded instead of trained: a SAELens release and id, or a local folder."""

    release: str | None = None
    """A SAELens pretrained release (e.g. llama_scope_r1_distill)."""
    id: str | None = None
    """The SAE's id within the release (e.g. l15r_800m_openr1_math)."""
    path: str | None = None
    """Or a folder in SAELens' format (e.g. one written by `saelab train-sae`)."""

    def __post_init__(self):
        if (self.path is None) == (self.release is None) or (self.release is not None and self.id is None):
            raise ValueError("sae.pretrained: give either release and id, or path")

    def describe(self) -> str:
        return self.path or f"{self.release}/{self.id}"


def _organisms_frontier() -> list[FrontierPoint]:
    return [FrontierPoint(a) for a in ("standard", "batchtopk", "jumprelu", "gated", "matryoshka_batchtopk")]


@dataclass
class SAEStageConfig:
    """The SAEs of a run (defaults: the organisms study's)."""

    hook: str = "blocks.1.hook_resid_post"
    """The hook every SAE reads (must be cached; a pretrained SAE's HF module path is mapped)."""
    train: SAETrainConfig = field(default_factory=lambda: SAETrainConfig(architecture="topk", expansion=4, k=16,
                                                                          lr=1e-3, steps=100, batch_size=4096,
                                                                          buffer_rows=65_536, norm_batches=5,
                                                                          checkpoints=0))
    """Training of each model's SAE (and of the frontier's, with their architecture). The
    stage writes into a temporary folder, so checkpoints could not be resumed from: keep 0."""
    pretrained: dict[str, PretrainedSAE] = field(default_factory=dict)
    """Models (by name) whose SAE is loaded (a SAELens release, or a folder) instead of trained."""
    frontier: list[FrontierPoint] = field(default_factory=_organisms_frontier)
    """More SAEs of the base model (architecture and sparsity each) for the L0-vs-explained-
    variance frontier; the base model's own SAE is on it too. Empty: no frontier."""
    crosscoder_variants: list[str] = field(default_factory=list)
    """Variants diffed against the base with a crosscoder (empty: none)."""
    crosscoder: CrosscoderConfig = field(default_factory=lambda: CrosscoderConfig(expansion=4, k=16, lr=1e-3,
                                                                                   steps=100, batch_size=4096,
                                                                                   buffer_rows=65_536,
                                                                                   norm_batches=5))
    """Training of each crosscoder."""
    heldout_every: int = 5
    """Examples (problems) with index % heldout_every == 0 are held out: never trained on,
    every metric is measured on them."""
    skip_first_token: bool = False
    """Leave position 0 of every sequence out of training and evaluation (the first token's
    massive activations in Llama- and Qwen-type models would dominate the loss)."""
    spliced_sequences: int = 200
    """Held-out sequences run through each model with its SAE spliced in (CE recovered, KL)."""

    def __post_init__(self):
        names = [p.name for p in self.frontier]
        if len(set(names)) < len(names):
            raise ValueError(f"sae.frontier: two points with the same settings: {names}")
        if self.heldout_every < 2:
            raise ValueError(f"sae.heldout_every must be >= 2 (1 would hold out everything), got {self.heldout_every}")
        if self.spliced_sequences < 1:
            raise ValueError(f"sae.spliced_sequences must be >= 1, got {self.spliced_sequences}")
        for where, c in [("sae.train", self.train)] + [(f"sae.frontier[{i}]", dataclasses.replace(
                self.train, architecture=p.architecture, options=p.options)) for i, p in enumerate(self.frontier)]:
            try:
                c.check()
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None

    def check_models(self, names: list[str]) -> None:
        """The models this section names are models of the run (`names`, the base first)."""
        bad = sorted(set(self.pretrained) - set(names))
        if bad:
            raise ValueError(f"sae.pretrained names {bad}, which are not models of this run ({names})")
        bad = [v for v in self.crosscoder_variants if v not in names[1:]]
        if bad:
            raise ValueError(f"sae.crosscoder_variants: {bad} are not fine-tuned variants of this run; "
                             f"use some of {names[1:]}")


@dataclass
class PairSAEConfig(SAEStageConfig):
    """The `sae` section of a pair run: the same fields, with defaults for real models (no
    frontier, the first token left out, fewer spliced sequences)."""

    train: SAETrainConfig = field(default_factory=lambda: SAETrainConfig(
        architecture="topk", expansion=4, k=8, lr=3e-3, steps=50, batch_size=256, buffer_rows=8192,
        norm_batches=2, checkpoints=0))
    """Training of each model's SAE (same seed and data order for all: paired SAEs)."""
    frontier: list[FrontierPoint] = field(default_factory=list)
    """More SAEs of the base model for the L0-vs-explained-variance frontier (default: none)."""
    skip_first_token: bool = True
    """Leave position 0 of every sequence out (its massive activations would dominate the loss)."""
    spliced_sequences: int = 16
    """Held-out sequences run through each model with its SAE spliced in (CE recovered, KL)."""
