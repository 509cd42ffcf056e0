"""The organisms study: tiny models trained from scratch on the arithmetic task, a base and
its fine-tuned variants (`experiments.organisms.recipes`), through these stages:

    organisms   models/<name>/              train (or reuse) base and variants
    behavior    behavior/<name>.json        the arithmetic behavioural suite on every model [all ranks]
    cache       activations/<name>/         residual streams of every model, same tokens  [all ranks]
    sae         saes/                       SAEs (trained or loaded), frontier, crosscoders [all ranks]
    features    features/<name>.json        latent scores, latent shifts, activation patching [all ranks]
    steer       steering/<variant>.json     the steering sweep with controls; validation in the base [all ranks]
    elicit      elicit/<variant>.json       site SAEs on a training set, the ladder, base-free interventions [all ranks: caches]
    figures     figures/<fig>.png + .json   behaviour, SAE and elicitation figures
    report      report.json, report.md

Under torchrun the stages marked [all ranks] split their work: the behaviour and features
stages their models, the steer stage its variants, the cache its shards, the sae stage its
SAEs and crosscoders (`experiments.stages`). The others run on rank 0.
"""

from __future__ import annotations

from experiments.engine.stage import Stage
from experiments.organisms.stages.behavior import behavior_outputs, run_behavior
from experiments.organisms.stages.elicit import elicit_outputs, run_elicit
from experiments.organisms.stages.cache import organism_provenance, organism_tokens
from experiments.organisms.stages.features import feature_outputs, run_features
from experiments.organisms.stages.figures import figure_data, figure_names
from experiments.organisms.stages.load import load_organism
from experiments.organisms.stages.models import organism_outputs, run_organisms
from experiments.organisms.stages.report import build
from experiments.organisms.stages.steer import run_steer, steer_outputs
from experiments.runconfig import RunConfig
from experiments.stages.cache import cache_outputs, cache_stage
from experiments.stages.figures import figures_stage
from experiments.stages.report import report_stage
from experiments.stages.sae import sae_outputs, sae_stage

CONFIG = RunConfig


def _nothing(run, cfg) -> list:
    return []


def _features_inputs(run, cfg) -> list:
    return organism_outputs(run, cfg) + cache_outputs(run, cfg) + sae_outputs(run, cfg)


def _steer_inputs(run, cfg) -> list:
    return feature_outputs(run, cfg) + organism_outputs(run, cfg) + sae_outputs(run, cfg)


def _elicit_inputs(run, cfg) -> list:
    return feature_outputs(run, cfg) + organism_outputs(run, cfg)


def _figure_inputs(run, cfg) -> list:
    return behavior_outputs(run, cfg) + [run.sae_eval] + feature_outputs(run, cfg) + steer_outputs(run, cfg)


def _report_inputs(run, cfg) -> list:
    figures = [p for p in run.figure_files(figure_names(cfg)) if p.suffix == ".json"]
    return (behavior_outputs(run, cfg) + cache_outputs(run, cfg) + [run.sae_eval] + feature_outputs(run, cfg)
            + steer_outputs(run, cfg) + [run.elicit(v) for v in cfg.elicit.variants] + figures)


STAGES = [
    Stage("organisms", ("task", "organisms"), _nothing, organism_outputs, run_organisms),
    Stage("behavior", ("task", "behavior"), organism_outputs, behavior_outputs, run_behavior, distributed=True),
    cache_stage(organism_tokens, load_organism, organism_provenance, ("task", "cache"), organism_outputs),
    sae_stage(load_organism, ("sae",), cache_outputs),
    Stage("features", ("task", "cache", "sae", "features"), _features_inputs, feature_outputs, run_features,
          distributed=True),
    Stage("steer", ("task", "sae", "features"), _steer_inputs, steer_outputs, run_steer, distributed=True),
    Stage("elicit", ("task", "features", "elicit"), _elicit_inputs, elicit_outputs, run_elicit, distributed=True),
    figures_stage(figure_names, figure_data, ("behavior", "sae", "features"), _figure_inputs),
    report_stage(build, _report_inputs),
]
