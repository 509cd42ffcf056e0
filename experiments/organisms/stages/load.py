"""What the organisms' stages read of earlier ones: an organism as a bridge, and the JSON
of the behaviour, features and steer stages. Kept apart from the stages that write them, so
a stage that only reads (figures, report, the shared cache and sae stages) does not count
their code in its fingerprint."""

from __future__ import annotations

import json

from experiments.rundir import RunDir


def load_organism(run: RunDir, cfg, name: str):
    """Organism `name` as a TransformerBridge."""
    from activations.models import load_bridge

    return load_bridge(str(run.model(name)), cfg.device)


def load_behavior(run: RunDir, cfg) -> dict[str, dict]:
    """{model: its behaviour metrics} of a finished behaviour stage."""
    return {name: json.loads(run.behavior(name).read_text())["metrics"] for name in cfg.model_names()}


def load_elicit(run: RunDir, cfg) -> tuple[dict, dict, dict]:
    """(features of every model, steering of every steered variant, the base's validation)."""
    features = {m: json.loads(run.features(m).read_text()) for m in cfg.model_names()}
    steering = {v: json.loads(run.steering(v).read_text()) for v in cfg.features.variants}
    return features, steering, json.loads(run.validation.read_text())
