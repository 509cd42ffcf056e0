"""The pairs study: a real base model and its fine-tuned variants (HF ids or folders) on a
text chain-of-thought task, through these stages:

    finetune    finetuned/<name>/           models the run makes with the lab's recipes  [all ranks]
    models      models/<name>.json          each model found (fast failure offline), one tokenizer
    behavior    behavior/<name>.json        text behaviour suite, with every generated CoT [all ranks]
    findings    findings/<part>.json        the literature's findings (TIP, ASC, DPO vs SFT, instructions)
    cache       activations/<name>/         residual streams on the same tokens              [all ranks]
    sae         saes/                       SAEs (trained or loaded), frontier, crosscoders  [all ranks]
    features    features/<name>.json        ReasonScore on reasoning words; ablation in the base [all ranks]
    steer       steering/<variant>.json     clamp the reasoning latents in each variant     [all ranks]
    figures     figures/<fig>.png + .json   behaviour, steering and SAE figures
    report      report.json, report.md

The cache and sae stages are the organisms' too (`experiments.stages`); under torchrun the
stages marked [all ranks] split their work between the ranks, the others run on rank 0.
"""

from __future__ import annotations

from experiments.engine.stage import Stage
from experiments.pairs.config import PairRunConfig
from experiments.pairs.stages.behavior import behavior_outputs, run_behavior
from experiments.pairs.stages.cache import pair_provenance, pair_tokens
from experiments.pairs.stages.features import feature_outputs, run_features
from experiments.pairs.stages.finetune import finetune_outputs, run_finetune
from experiments.pairs.stages.findings import findings_outputs, run_findings
from experiments.pairs.stages.figures import figure_data, figure_names
from experiments.pairs.stages.load import load_pair_model
from experiments.pairs.stages.models import model_outputs, run_models
from experiments.pairs.stages.report import build
from experiments.pairs.stages.steer import run_steer, steer_outputs
from experiments.stages.cache import cache_outputs, cache_stage
from experiments.stages.figures import figures_stage
from experiments.stages.report import report_stage
from experiments.stages.sae import sae_outputs, sae_stage

CONFIG = PairRunConfig


def _nothing(run, cfg) -> list:
    return []


def _cache_inputs(run, cfg) -> list:
    return model_outputs(run, cfg) + behavior_outputs(run, cfg)


def _features_inputs(run, cfg) -> list:
    return cache_outputs(run, cfg) + sae_outputs(run, cfg)


def _steer_inputs(run, cfg) -> list:
    return feature_outputs(run, cfg) + sae_outputs(run, cfg)


def _figure_inputs(run, cfg) -> list:
    return behavior_outputs(run, cfg) + findings_outputs(run, cfg) + steer_outputs(run, cfg) + [run.sae_eval]


def _report_inputs(run, cfg) -> list:
    figures = run.figure_files(figure_names(cfg))
    return behavior_outputs(run, cfg) + findings_outputs(run, cfg) + [run.sae_eval] + feature_outputs(run, cfg) + steer_outputs(run, cfg) + figures


STAGES = [
    # cache and sae: the models stage checks that sae.hook is cached (its outputs do not change)
    # finetune: no outputs (and nothing to do) when the config has no finetune section
    Stage("finetune", ("finetune", "finetune_limit", "task"), _nothing, finetune_outputs, run_finetune,
          distributed=True),
    Stage("models", ("models", "cache", "sae"), finetune_outputs, model_outputs, run_models),
    Stage("behavior", ("models", "task", "behavior"), model_outputs, behavior_outputs, run_behavior, distributed=True),
    # findings: only findings/index.json when the config's findings section names no model; it reads
    # `models` too (a finding may name a model of the pair)
    Stage("findings", ("models", "finetune", "task", "findings"), finetune_outputs, findings_outputs, run_findings),
    cache_stage(pair_tokens, load_pair_model, pair_provenance, ("models", "task", "cache"), _cache_inputs),
    sae_stage(load_pair_model, ("models", "sae"), cache_outputs),
    Stage("features", ("models", "task", "sae", "features"), _features_inputs, feature_outputs, run_features,
          distributed=True),
    Stage("steer", ("models", "task", "behavior", "sae", "features"), _steer_inputs, steer_outputs, run_steer,
          distributed=True),
    figures_stage(figure_names, figure_data, ("models", "sae"), _figure_inputs),
    report_stage(build, _report_inputs),
]
