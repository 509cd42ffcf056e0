"""The stages of `saelab run`, in order: what each reads, writes and does.

    organisms   models/<name>/                    train (or reuse) base and variants
    behavior    behavior/<name>.json              the behavioural suite on every model
    cache       activations/<name>/               residual streams of every model, same tokens
    sae         saes/                             SAEs, frontier, crosscoders, eval.json
    features    features/<name>.json              latent scores, latent shifts, activation patching
    steer       steering/<variant>.json           the steering sweep with controls; validation in the base
    figures     figures/<fig>.png + <fig>.json    drawn from behavior/*.json
    report      report.json, report.md            from behavior/, the caches' indexes and figures/*.json
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from activations.atomic import replace_dir, temp_dir, write_atomic
from experiments.pipeline import Stage
from experiments.runconfig import RunConfig


def model_names(cfg: RunConfig) -> list[str]:
    return ["base"] + [v.name for v in cfg.organisms.parsed_variants()]


def _model_files(run: Path, cfg: RunConfig) -> list[Path]:
    """What a finished organisms stage leaves: weights and saelab.json of every model, and
    the fixed training set of variants trained on one."""
    files = [run / "models" / "base" / f for f in ("model.safetensors", "saelab.json")]
    for v in cfg.organisms.parsed_variants():
        files += [run / "models" / v.name / f for f in ("model.safetensors", "saelab.json")]
        if v.cfg.n_problems is not None:
            files.append(run / "models" / v.name / "train_problems.json")
    return files


def _behavior_files(run: Path, cfg: RunConfig) -> list[Path]:
    return [run / "behavior" / f"{name}.json" for name in model_names(cfg)]


def _figure_files(run: Path, cfg: RunConfig) -> list[Path]:
    from experiments.figures import FIGURES
    from experiments.sae_figures import SAE_FIGURES

    return [run / "figures" / f"{name}.{ext}" for name in [*FIGURES, *SAE_FIGURES, *_elicit_figures(cfg)]
            for ext in ("png", "json")]


def _elicit_figures(cfg: RunConfig) -> list[str]:
    """The features/steer figures this run draws (patching and steering need a steered variant)."""
    from experiments.elicit_figures import ELICIT_FIGURES

    return [n for n, spec in ELICIT_FIGURES.items() if cfg.features.variants or n == "reason_latents"]


def load_elicit(run: Path, cfg: RunConfig) -> tuple[dict, dict, dict]:
    features = {m: json.loads(p.read_text()) for m, p in zip(model_names(cfg), _feature_files(run, cfg))}
    steering = {v: json.loads((run / "steering" / f"{v}.json").read_text()) for v in cfg.features.variants}
    validation = json.loads((run / "steering" / "base-validation.json").read_text())
    return features, steering, validation


def load_behavior(run: Path, cfg: RunConfig) -> dict[str, dict]:
    return {name: json.loads(p.read_text())["metrics"] for name, p in zip(model_names(cfg), _behavior_files(run, cfg))}


# ---- organisms --------------------------------------------------------------------------
def run_organisms(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.organisms.build import build_organisms

    # The run's config.yaml has been checked (or --overwrite given): rebuild what differs.
    build_organisms(cfg, run, overwrite=True, retrain=force)


# ---- behaviour --------------------------------------------------------------------------
def run_behavior(run: Path, cfg: RunConfig, force: bool) -> None:
    import torch

    from experiments.behavior.model_eval import evaluate_model
    from experiments.tasks import ArithmeticTask

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = ArithmeticTask(cfg.task)
    ref = cfg.behavior.reference
    tmp = temp_dir(run / "behavior")
    for name in model_names(cfg):
        t0 = time.perf_counter()
        reference = None if name == ref else str(run / "models" / ref)
        metrics = evaluate_model(str(run / "models" / name), task, cfg.behavior, cfg.seed, cfg.device,
                                 reference=reference, desc=f"behavior {name}")
        record = {"variant": name, "model": f"models/{name}", "reference": None if name == ref else f"models/{ref}",
                  "seed": cfg.seed, "metrics": metrics}
        (tmp / f"{name}.json").write_text(json.dumps(record, indent=1))
        acc = metrics["accuracy"]
        print(f"  behavior {name}: {time.perf_counter() - t0:.1f} s, accuracy "
              + " ".join(f"k{k}={c['value']:.2f}" for k, c in acc.items()), flush=True)
    replace_dir(tmp, run / "behavior")


# ---- activation caches -------------------------------------------------------------------
def _cache_files(run: Path, cfg: RunConfig) -> list[Path]:
    # meta + index describe a complete cache (the index has every shard's size); hashing the
    # shards themselves would read gigabytes on every run of a big model.
    return [run / "activations" / name / f for name in model_names(cfg) for f in ("meta.json", "index.json")]


def run_cache(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.caching import cache_model
    from experiments.tasks import ArithmeticTask

    task = ArithmeticTask(cfg.task)
    for name in model_names(cfg):
        t0 = time.perf_counter()
        if force:  # otherwise a complete cache with the same metadata is kept, a partial one resumed
            shutil.rmtree(run / "activations" / name, ignore_errors=True)
        meta = cache_model(str(run / "models" / name), run / "activations" / name, task, cfg.cache, cfg.seed,
                           cfg.device, overwrite=True, name=name)
        print(f"  cache {name}: {meta['n_rows']} rows x {len(meta['hooks'])} hooks in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)


def cache_sizes(run: Path, cfg: RunConfig) -> dict[str, dict]:
    from activations.cache.format import read_json

    out = {}
    for name in model_names(cfg):
        meta = read_json(run / "activations" / name / "meta.json")
        index = read_json(run / "activations" / name / "index.json")
        out[name] = {"path": f"activations/{name}", "rows": meta["n_rows"], "sequences": meta["n_sequences"],
                     "hooks": meta["hooks"], "dtype": meta["write_config"]["dtype"], "bytes": index["bytes"]}
    return out


# ---- SAEs -------------------------------------------------------------------------------
def _sae_files(run: Path, cfg: RunConfig) -> list[Path]:
    folders = [run / "saes" / m for m in model_names(cfg)] + [run / "saes" / "frontier" / p.name for p in cfg.sae.frontier]
    files = [f / n for f in folders for n in ("cfg.json", "sae_weights.safetensors")]
    files += [run / "saes" / f"crosscoder-{v}" / n for v in cfg.sae.crosscoder_variants
              for n in ("cfg.json", "crosscoder_weights.safetensors", "diff.json")]
    return files + [run / "saes" / "eval.json"]


def run_sae(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.sae_suite import run_sae_suite

    tmp = temp_dir(run / "saes")
    run_sae_suite(run, model_names(cfg), cfg.sae, cfg.device, tmp, log=lambda line: print(line, flush=True))
    replace_dir(tmp, run / "saes")


def load_sae_eval(run: Path) -> dict:
    return json.loads((run / "saes" / "eval.json").read_text())


# ---- features and steering ----------------------------------------------------------------
def _feature_files(run: Path, cfg: RunConfig) -> list[Path]:
    return [run / "features" / f"{m}.json" for m in model_names(cfg)]


def _steer_files(run: Path, cfg: RunConfig) -> list[Path]:
    return [run / "steering" / f"{v}.json" for v in cfg.features.variants] + [run / "steering" / "base-validation.json"]


def run_features(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.elicit import run_features as features
    from experiments.tasks import ArithmeticTask

    tmp = temp_dir(run / "features")
    features(run, model_names(cfg), cfg.features, cfg.sae.hook, ArithmeticTask(cfg.task), cfg.seed, cfg.device, tmp,
             log=lambda line: print(line, flush=True))
    replace_dir(tmp, run / "features")


def run_steer(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.elicit import run_steer as steer
    from experiments.tasks import ArithmeticTask

    tmp = temp_dir(run / "steering")
    steer(run, cfg.features, cfg.sae.hook, ArithmeticTask(cfg.task), cfg.seed, cfg.device, tmp,
          log=lambda line: print(line, flush=True))
    replace_dir(tmp, run / "steering")


# ---- figures ----------------------------------------------------------------------------
def run_figures(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.figures import draw_all

    from experiments.elicit_figures import draw_elicit_figures
    from experiments.sae_figures import draw_sae_figures

    tmp = temp_dir(run / "figures")
    draw_all(load_behavior(run, cfg), tmp, n_steps=cfg.behavior.faithfulness_ks[0])
    draw_sae_figures(load_sae_eval(run), tmp, model_names(cfg))
    features, steering, _ = load_elicit(run, cfg)
    draw_elicit_figures(features, steering, tmp)
    replace_dir(tmp, run / "figures")


# ---- report -----------------------------------------------------------------------------
def run_report(run: Path, cfg: RunConfig, force: bool) -> None:
    from experiments.config import fingerprint, to_dict
    from experiments.figures import FIGURES
    from experiments.report import build_report, render_markdown
    from experiments.elicit_figures import elicit_summary
    from experiments.sae_figures import SAE_FIGURES, sae_summary

    report = build_report(load_behavior(run, cfg), cfg.behavior.reference,
                          {"seed": cfg.seed, "config_fingerprint": fingerprint(to_dict(cfg))})
    report["cache"] = cache_sizes(run, cfg)
    report["sae"] = sae_summary(load_sae_eval(run))
    report["elicitation"] = elicit_summary(*load_elicit(run, cfg))
    md = render_markdown(report, f"saelab report: {run.name}", list(FIGURES) + list(SAE_FIGURES) + _elicit_figures(cfg),
                         {"faithfulness": "k=" + ",".join(map(str, cfg.behavior.faithfulness_ks))})
    text = json.dumps(report, indent=1)  # both rendered before either is written
    write_atomic(run / "report.json", text)
    write_atomic(run / "report.md", md)


# the task the organisms stages run on (not the text tasks beside it, which no stage here runs)
ARITHMETIC_TASK = ("experiments.tasks.protocol", "experiments.tasks.arithmetic")
# the features/ modules the features and steer stages run (not the browser's, which no stage runs)
SCORING_CODE = ("features.reason_score", "features.probes", "features.causal", "features.patching",
                "features.latent_stats", "features.steer")

STAGES = [
    # organisms: each model's fingerprint also covers the code that trains it (build.py),
    # so an edited recipe retrains that variant and reuses the rest.
    Stage("organisms", ("task", "organisms"), lambda run, cfg: [], _model_files, run_organisms,
          code=("experiments.organisms", *ARITHMETIC_TASK)),
    Stage("behavior", ("task", "behavior"), _model_files, _behavior_files, run_behavior,
          code=("experiments.behavior", *ARITHMETIC_TASK, "activations.generate", "activations.models")),
    Stage("cache", ("task", "cache"), _model_files, _cache_files, run_cache,
          code=("activations.cache", "experiments.cache_set", "experiments.caching", *ARITHMETIC_TASK)),
    Stage("sae", ("sae",), _cache_files, _sae_files, run_sae,
          code=("sae", "experiments.sae_suite", "activations.cache", "activations.models", *ARITHMETIC_TASK)),
    Stage("features", ("task", "cache", "sae", "features"),
          lambda run, cfg: _model_files(run, cfg) + _cache_files(run, cfg) + _sae_files(run, cfg),
          _feature_files, run_features, code=(*SCORING_CODE, "experiments.elicit", "experiments.probe_items",
                                              *ARITHMETIC_TASK, "experiments.behavior", "sae", "activations")),
    Stage("steer", ("task", "sae", "features"),
          lambda run, cfg: _feature_files(run, cfg) + _model_files(run, cfg) + _sae_files(run, cfg), _steer_files, run_steer,
          code=(*SCORING_CODE, "experiments.elicit", "experiments.probe_items", *ARITHMETIC_TASK,
                "experiments.behavior", "sae", "activations")),
    Stage("figures", ("behavior", "sae", "features"), lambda run, cfg: _behavior_files(run, cfg) + [
        run / "saes" / "eval.json"] + _feature_files(run, cfg) + _steer_files(run, cfg), _figure_files, run_figures,
        code=("experiments.figures", "experiments.sae_figures", "experiments.elicit_figures", "experiments.stages")),
    Stage("report", ("*",), lambda run, cfg: _behavior_files(run, cfg) + _cache_files(run, cfg) + [
        run / "saes" / "eval.json"] + _feature_files(run, cfg) + _steer_files(run, cfg) + [
        p for p in _figure_files(run, cfg) if p.suffix == ".json"], lambda run, cfg: [run / "report.json", run / "report.md"],
        run_report, code=("experiments.report", "experiments.figures", "experiments.sae_figures",
                          "experiments.elicit_figures", "experiments.stages")),
]


# ---- reading a finished run -------------------------------------------------------------
def load_run_dir(run: Path) -> RunConfig:
    """The config of a run directory written by `saelab run`."""
    from experiments.config import from_dict, load_yaml

    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml); create one with "
                                f"saelab run --config default --out {run}")
    data = load_yaml(path)
    if "models" in data:
        raise ValueError(f"{run} is a model-pair run; the browser reads organism runs only "
                         f"(its report is {run}/report.md)")
    return from_dict(RunConfig, data, str(path))


def require_stages(run: Path, cfg: RunConfig, names: list[str], why: str, stages: list | None = None) -> None:
    """Refuse, naming the stage to run, when a stage's outputs are missing from `run`
    (`stages`: the run's stage list; default the organisms')."""
    by_name = {s.name: s for s in stages or STAGES}
    for name in names:
        missing = [p for p in by_name[name].outputs(run, cfg) if not p.exists()]
        if missing:
            rel = missing[0].relative_to(run) if missing[0].is_relative_to(run) else missing[0]
            # `saelab features RUN` and `saelab steer RUN` run their stage; the other stages run
            # from the run's own config (finished stages are skipped)
            fix = f"saelab {name} {run}" if name in ("features", "steer") else \
                f"saelab run --config {run}/config.yaml --out {run} --until {name}"
            raise FileNotFoundError(f"{why} needs the '{name}' stage, which {run} has not finished (no {rel}): "
                                    f"run `{fix}` first")
