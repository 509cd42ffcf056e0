"""The training configs of saelab's sparse coders: what an SAE and a crosscoder share
(`CoderTrainConfig`), and the SAE's own fields (`SAETrainConfig`; the crosscoder's are in
`sae.crosscoder`). Kept free of torch and SAELens imports: the command line builds its
help from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

# SAELens' training architectures (its registry's names in the pinned version; `check`
# confirms the chosen one against the installed SAELens).
SAEArchitecture = Literal["standard", "topk", "batchtopk", "jumprelu", "gated", "matryoshka_batchtopk", "abstopk",
                          "matching_pursuit"]


def training_classes(architecture: str):
    """SAELens' (training SAE class, its config class) for an architecture name."""
    from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, get_sae_training_class

    if architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise ValueError(f"unknown SAE architecture {architecture!r}; SAELens has "
                         f"{sorted(SAE_TRAINING_CLASS_REGISTRY)}")
    return get_sae_training_class(architecture)


@dataclass
class CoderTrainConfig:
    """What every training run of a sparse coder (an SAE, a crosscoder) sets."""

    expansion: int = 8
    """Latents per input dimension (of one model): d_sae = expansion * d_model."""
    k: int = 16
    """Active latents per token: exactly k (topk), or k on average over the batch
    (batchtopk, matryoshka_batchtopk, the crosscoder's BatchTopK)."""
    lr: float = 3e-4
    """Adam learning rate (constant)."""
    steps: int = 2000
    """Optimizer steps."""
    batch_size: int = 4096
    """Rows (tokens; token pairs for a crosscoder) per step."""
    buffer_rows: int = 262_144
    """Shuffle buffer of the cache reader (memory: buffer_rows * d_model * 2 bytes per cache)."""
    norm_batches: int = 50
    """Batches used to estimate the activation normalisation (each model's, for a crosscoder)."""
    seed: int = 0
    """Seeds the initialisation and the data order."""
    device: str = "cpu"
    """Torch device."""

    # Not fields (no annotation): how errors name the config, and the fields that must be >= 1.
    _kind = "sae"
    _at_least_one = ("expansion", "k", "steps", "batch_size", "buffer_rows", "norm_batches")

    def __post_init__(self):
        for name in self._at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{self._kind} {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class SAETrainConfig(CoderTrainConfig):
    """One SAE's training run."""

    architecture: SAEArchitecture = "topk"
    """A SAELens training architecture (its registry's name)."""
    sparsity_coefficient: float = 1.0
    """L1 coefficient (standard, gated) or L0 coefficient (jumprelu)."""
    options: dict[str, Any] = field(default_factory=dict)
    """More fields of the architecture's SAELens training config, by name, e.g.
    {jumprelu_ste_to_input: true} (Anthropic's JumpReLU; SAELens' default does not sparsify
    in a few hundred steps)."""
    autocast: bool = False
    """Train under bfloat16 autocast (SAELens' trainer; saves memory and time on GPUs; the
    weights and the optimizer stay float32)."""
    checkpoints: int = 4
    """Checkpoints written during training, for resuming an interrupted run (0: none)."""

    def __post_init__(self):
        super().__post_init__()
        if self.checkpoints < 0:
            raise ValueError(f"sae checkpoints must be >= 0, got {self.checkpoints}")

    def check(self) -> None:
        """The checks that need SAELens (slow to import, so not in __post_init__, which the
        command line runs to build its help): the architecture and its options exist."""
        _, cfg_cls = training_classes(self.architecture)
        allowed = {f.name for f in dataclasses.fields(cfg_cls)}
        bad = sorted(set(self.options) - allowed)
        if bad:
            raise ValueError(f"sae options {bad} are not fields of SAELens' {cfg_cls.__name__}; it has "
                             f"{sorted(allowed)}")
