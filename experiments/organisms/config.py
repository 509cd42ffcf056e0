"""The organisms config: one YAML file describes the base and every fine-tuned variant."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from experiments.config import from_dict
from experiments.organisms.model import ModelConfig
from experiments.organisms.pretrain import BaseConfig
from experiments.organisms.recipes import RecipeName, get_recipe
from experiments.organisms.recipes.common import FinetuneConfig


@dataclass
class Variant:
    """A fine-tuned variant: its name, its recipe and the recipe's typed config."""

    name: str
    recipe: RecipeName
    cfg: FinetuneConfig


@dataclass
class OrganismsConfig:
    """The base model organism and its fine-tuned variants."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """Shape of the base model (variants share it)."""
    base: BaseConfig = field(default_factory=BaseConfig)
    """Pretraining of the base model."""
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Fine-tuned variants by name: `{recipe: <name>, ...recipe options}`."""

    def __post_init__(self):
        self.parsed_variants()  # fail early on a bad variant

    def parsed_variants(self) -> list[Variant]:
        out = []
        for name, spec in self.variants.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name == "base":
                raise ValueError(f"variant name {name!r} must be letters, digits, '-', '_' or '.', "
                                 "and not 'base'")
            spec = dict(spec or {})
            if "recipe" not in spec:
                raise ValueError(f"variant {name!r} needs a `recipe:` key")
            recipe = get_recipe(spec.pop("recipe"))
            out.append(Variant(name, recipe.NAME, from_dict(recipe.Config, spec, f"variants.{name}")))
        return out

