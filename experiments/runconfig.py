"""The run config: one YAML file (see `experiments/configs/`) with a section per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from experiments.behavior.suite import BehaviorConfig
from experiments.cache_set import CacheConfig
from experiments.elicit.config import ElicitConfig
from experiments.elicit.sites_config import SitesConfig
from experiments.config import check_device, from_dict, load_yaml, resolve_config_path
from experiments.organisms.config import OrganismsConfig
from experiments.stages.sae_config import SAEStageConfig
from experiments.tasks import TaskConfig


@dataclass
class RunConfig:
    """Everything a run needs to rebuild the same outputs."""

    study: Literal["organisms", "findings"] = "organisms"
    """organisms: every stage (behaviour, caches, SAEs, patching, steering); findings: the
    behavioural findings alone (organisms -> behavior -> figures -> report, the study
    `experiments.organisms.findings_study`), cheap enough to sweep over seeds."""
    seed: int = 0
    """Seeds every generator (data, initialisation, sampling)."""
    device: str = "cpu"
    """Torch device for training and evaluation ("cpu", "cuda", "cuda:1", ...)."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """The synthetic task."""
    organisms: OrganismsConfig = field(default_factory=OrganismsConfig)
    """The model organisms: base model and fine-tuned variants."""
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    """The behavioural suite run on every model."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    """The activation caches of every model (same tokens for all: base/fine-tuned pairs)."""
    sae: SAEStageConfig = field(default_factory=SAEStageConfig)
    """SAEs of every model at one hook (trained, or loaded from a folder), the architecture
    frontier, crosscoders."""
    features: ElicitConfig = field(default_factory=ElicitConfig)
    """Latent scores, activation patching and the steering sweep (stages features, steer)."""
    elicit: SitesConfig = field(default_factory=SitesConfig)
    """SAEs at the sites where the change lives, on a training token set of their own, the
    latent-patching ladder and the base-free interventions (stage elicit)."""

    def model_names(self) -> list[str]:
        """The run's models, the base first."""
        return ["base"] + [v.name for v in self.organisms.parsed_variants()]

    def __post_init__(self):
        check_device(self.device)
        if self.study not in ("organisms", "findings"):
            raise ValueError(f"study must be 'organisms' or 'findings', got {self.study!r}")
        names = self.model_names()
        if self.behavior.reference not in names:
            raise ValueError(f"behavior.reference {self.behavior.reference!r} is not a model of this run; "
                             f"use one of {names}")
        for sweep in ("switch", "compress", "format", "instruction"):
            bad = [v for v in getattr(self.behavior, sweep).models if v not in names]
            if bad:
                raise ValueError(f"behavior.{sweep}.models: {bad} are not models of this run; use some of {names}")
        held = set(self.behavior.instruction.held_out) if self.behavior.instruction.models else set()
        for v in self.organisms.parsed_variants():
            if v.recipe == "sft-instruction" and held & set(v.cfg.instructions):
                raise ValueError(f"behavior.instruction.held_out {''.join(sorted(held))!r} is trained by {v.name} "
                                 f"(instructions {v.cfg.instructions!r}): a held-out instruction must be one no "
                                 f"fine-tune sees")
        layers = self.behavior.compress.layers or []
        if any(not 0 <= L < self.organisms.model.n_layers for L in layers):
            raise ValueError(f"behavior.compress.layers must be in 0..{self.organisms.model.n_layers - 1}, got {layers}")
        from activations.cache.writer import expand_hooks

        hooks = expand_hooks(self.cache.write.hooks, self.organisms.model.n_layers)
        if self.sae.hook not in hooks:
            raise ValueError(f"sae.hook {self.sae.hook!r} is not cached (cache.write.hooks gives {hooks})")
        self.sae.check_models(names)
        bad = [v for v in self.features.variants if v not in names[1:]]
        if bad:
            raise ValueError(f"features.variants: {bad} are not fine-tuned variants of this run; use some of {names[1:]}")
        bad = [v for v in self.elicit.variants if v not in names[1:]]
        if bad:
            raise ValueError(f"elicit.variants: {bad} are not fine-tuned variants of this run; use some of {names[1:]}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = torch's default), got {self.threads}")


def load_run_config(name_or_path: str, seed: int | None = None) -> tuple[RunConfig, Path]:
    """Load a built-in config by name (`quick`, `default`) or a YAML file; `seed` overrides."""
    path = resolve_config_path(name_or_path)
    data = load_yaml(path)
    if seed is not None:
        data["seed"] = seed
    return from_dict(RunConfig, data, str(path)), path
