"""Activation patching between the base and a variant on the probe sets, per layer,
component and position role: how much of the behaviour one site carries (the oracle)."""

from __future__ import annotations

from experiments.elicit.config import COMPONENTS
from experiments.elicit.probe import Probe
from experiments.probe_items import item_metrics
from features.patching import patching_sweep


def patching_table(base, ft, probe: Probe, n_layers: int, roles: list[str]) -> dict:
    """metrics[direction][f"{component}@{layer}"][role][set]: direction base->variant (the
    variant run with the base's activation) and variant->base."""
    sites = {f"{comp}@{layer}": f"blocks.{layer}.hook_{comp}" for comp in COMPONENTS for layer in range(n_layers)}
    out = {}
    for direction, (receiver, donor) in {"base_to_variant": (ft, base), "variant_to_base": (base, ft)}.items():
        table = {site: {role: {} for role in roles} for site in sites}
        for name, items in probe.sets.items():
            logits = patching_sweep(receiver, donor, items.ids, list(sites.values()),
                                    {role: items.role_masks(role) for role in roles})
            for site, hook in sites.items():
                for role in roles:
                    table[site][role][name] = item_metrics(logits[(hook, role)], items)
        out[direction] = table
    return out
