"""The stages of a model-pair run (`saelab run` on a config with a `models` section):

    models      models/<name>.json          each model found (fast failure offline), one tokenizer
    behavior    behavior/<name>.json        text behaviour suite, with every generated CoT [all ranks]
    cache       activations/<name>/         residual streams on the same tokens   [all torchrun ranks]
    sae         saes/<name>/, eval.json     trained (one model per rank) or loaded [all torchrun ranks]
    features    features/<name>.json        ReasonScore on reasoning words; ablation in the base [all ranks]
    steer       steering/<variant>.json     clamp the reasoning latents in each variant [all ranks]
    figures     figures/<fig>.png + .json   behaviour and steering, redrawn by `saelab figures RUN`
    report      report.json, report.md

Under torchrun the stages marked [all ranks] split their work between the ranks: the cache
its shards, the SAEs their models, and the behaviour, features and steer stages every
generation and scoring call (`experiments.distributed.split_map`: every rank builds the same
prompts, each runs its slice, all get the results; rank 0 writes). The models, figures
and report stages run on rank 0 while the rest wait (see `experiments.pipeline`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path


from activations.atomic import replace_dir, temp_dir, write_atomic
from experiments.pairs.config import PairRunConfig
from experiments.distributed import broadcast, dist_barrier, dist_rank_world
from experiments.pipeline import Stage


def _log(line: str) -> None:
    if dist_rank_world()[0] == 0:
        print(line, flush=True)


def _out_dir(final: Path) -> Path | None:
    """The temporary folder a stage writes into (rank 0's); None on the other ranks, which
    compute their share and write nothing."""
    return temp_dir(final) if dist_rank_world()[0] == 0 else None


def _write(tmp: Path | None, name: str, record: dict) -> None:
    if tmp is not None:
        (tmp / name).write_text(json.dumps(record, indent=1))


def _finish(tmp: Path | None, final: Path) -> None:
    if tmp is not None:
        replace_dir(tmp, final)


def _problems(cfg: PairRunConfig):
    from experiments.tasks.text import load_problems

    return load_problems(cfg.task)


def _model_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "models" / f"{m}.json" for m in cfg.model_names()]


def _behavior_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "behavior" / f"{m}.json" for m in cfg.model_names()]


def _cache_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "activations" / m / f for m in cfg.model_names() for f in ("meta.json", "index.json")]


def _sae_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "saes" / m / f for m in cfg.model_names() for f in ("cfg.json", "sae_weights.safetensors")] + [
        run / "saes" / "eval.json"]


def _feature_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "features" / f"{m}.json" for m in cfg.model_names()]


def _steer_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "steering" / f"{v}.json" for v in cfg.models.variants]


def tokenizer_of(cfg: PairRunConfig, name: str):
    from experiments.pairs.behavior import load_tokenizer

    spec = cfg.spec(name)
    return load_tokenizer(spec.path, spec.revision)


def load_model(cfg: PairRunConfig, name: str):
    """(TransformerBridge, tokenizer) of model `name`."""
    from activations.models import load_bridge

    return load_bridge(cfg.spec(name)), tokenizer_of(cfg, name)


# ---- models ---------------------------------------------------------------------------
def run_models(run: Path, cfg: PairRunConfig, force: bool) -> None:
    from transformers import AutoConfig

    from activations.cache.writer import expand_hooks
    from activations.models import check_available, check_same_tokenizer, tokenizer_hash, weights_hash
    from sae.load import check_pretrained

    for p in cfg.sae.pretrained.values():  # before hours of generation, not after
        if p.path is None:
            check_pretrained(p.release, p.id)
        elif not Path(p.path).is_dir():
            raise FileNotFoundError(f"sae.pretrained: no SAE folder {p.path}")
    tmp = temp_dir(run / "models")
    base_tok = None
    for name in cfg.model_names():
        note = None
        spec = cfg.spec(name)
        check_available(spec)
        tok = tokenizer_of(cfg, name)
        if base_tok is None:
            base_tok = tok
        else:
            note = check_same_tokenizer(base_tok, tok, cfg.models.base.path, spec.path)
        hf = AutoConfig.from_pretrained(spec.path, revision=spec.revision)
        n_layers = getattr(hf, "num_hidden_layers", None) or getattr(hf, "n_layer", None)
        hooks = expand_hooks(cfg.cache.write.hooks, n_layers)
        if cfg.sae.hook not in hooks:  # before hours of generation, not after
            raise ValueError(f"sae.hook {cfg.sae.hook!r} is not cached for {name} ({n_layers} layers; cache.write.hooks "
                             f"gives {hooks}); add it to cache.write.hooks")
        local = Path(spec.path).is_dir()
        record = {"name": name, "spec": {k: getattr(spec, k) for k in ("path", "revision", "dtype", "device_map")},
                  "architectures": getattr(hf, "architectures", None), "model_type": hf.model_type,
                  "n_layers": n_layers, "d_model": getattr(hf, "hidden_size", None) or getattr(hf, "n_embd", None),
                  "hub_commit": getattr(hf, "_commit_hash", None), "weights_hash": weights_hash(spec.path) if local else None,
                  "tokenizer_hash": tokenizer_hash(tok), "chat_template": bool(getattr(tok, "chat_template", None)),
                  "tokenizer_note": note}
        (tmp / f"{name}.json").write_text(json.dumps(record, indent=1))
        _log(f"  model {name}: {spec.path} ({hf.model_type})" + (f"; note: {note}" if note else ""))
    replace_dir(tmp, run / "models")


# ---- behaviour --------------------------------------------------------------------------
def run_behavior(run: Path, cfg: PairRunConfig, force: bool) -> None:
    from experiments.pairs.behavior import evaluate_text

    problems = _problems(cfg)
    tmp = _out_dir(run / "behavior")
    for name in cfg.model_names():
        t0 = time.perf_counter()
        model, tok = load_model(cfg, name)
        result = evaluate_text(model, tok, problems, cfg.task, cfg.behavior, cfg.seed, log=_log)
        _write(tmp, f"{name}.json", {"model": name, "seed": cfg.seed, **result})
        m = result["metrics"]
        _log(f"  behavior {name}: accuracy {m['accuracy']['value']:.2f}, answered {m['answered']['value']:.2f} "
             f"({time.perf_counter() - t0:.1f} s)")
        del model
    _finish(tmp, run / "behavior")


def load_behavior(run: Path, cfg: PairRunConfig) -> dict[str, dict]:
    return {m: json.loads(p.read_text()) for m, p in zip(cfg.model_names(), _behavior_files(run, cfg))}


# ---- caches -----------------------------------------------------------------------------
def run_cache(run: Path, cfg: PairRunConfig, force: bool) -> None:
    """Every rank calls this; `write_cache` splits each model's shards between the ranks."""
    from activations.cache import write_cache
    from activations.models import provenance
    from experiments.config import to_dict
    from experiments.pairs.tokens import texts, token_set
    from experiments.tasks.text import render_prompt

    rank, _ = dist_rank_world()
    problems = _problems(cfg)
    behavior = load_behavior(run, cfg)
    base_tok = tokenizer_of(cfg, "base")
    prompts = [render_prompt(p.question, cfg.task, base_tok) for p in problems]
    gens = {m: b["generations"] for m, b in behavior.items()}
    ids, labels = token_set(base_tok, texts(problems, prompts, gens, cfg.task, cfg.cache.texts, cfg.seed),
                            cfg.cache.words)
    for name in cfg.model_names():
        t0 = time.perf_counter()
        out = run / "activations" / name
        if force and rank == 0:  # otherwise a complete cache with the same metadata is kept
            shutil.rmtree(out, ignore_errors=True)
        dist_barrier()
        model, _ = load_model(cfg, name)
        spec = cfg.spec(name)
        # the whole spec: a cache of the same tokens from other weights (dtype) is another cache
        prov = provenance(spec.path, model) | {"name": name, "spec": to_dict(spec), "task": to_dict(cfg.task),
                                              "seed": cfg.seed, "texts": cfg.cache.texts, "words": cfg.cache.words}
        meta = write_cache(model, ids, labels, out, cfg.cache.write, prov, overwrite=True)
        if rank == 0:
            _log(f"  cache {name}: {meta['n_rows']} rows x {len(meta['hooks'])} hooks "
                 f"({meta['write_config']['dtype']}) in {time.perf_counter() - t0:.1f} s")
        del model


# ---- SAEs -------------------------------------------------------------------------------
def run_sae(run: Path, cfg: PairRunConfig, force: bool) -> None:
    """Every rank calls this: rank r trains the SAEs of models r, r + world, ... (one SAE per
    rank, sparsify's distribute_modules idea: SAELens' trainer has no data-parallel mode);
    rank 0 then loads the pretrained ones and evaluates all."""
    import dataclasses

    from experiments.pairs.tokens import SAERows
    from sae.train import train_sae

    rank, world = dist_rank_world()
    tmp = run / ".saes.tmp-dist"  # one name for every rank (a pid would differ between them)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist_barrier()
    train = [m for m in cfg.model_names() if m not in cfg.sae.pretrained]
    tcfg = dataclasses.replace(cfg.sae.train, device=cfg.device)
    split = SAERows(cfg.sae.heldout_every, heldout=False)
    for m in train[rank::world]:
        t0 = time.perf_counter()
        train_sae(run / "activations" / m, cfg.sae.hook, tcfg, tmp / m, where=split)
        print(f"  sae {m}: trained in {time.perf_counter() - t0:.1f} s" + (f" (rank {rank})" if world > 1 else ""),
              flush=True)  # every rank says what it trained
    dist_barrier()
    if rank == 0:
        _evaluate_saes(run, cfg, tmp)
        replace_dir(tmp, run / "saes")


def _pretrained(run: Path, cfg: PairRunConfig, name: str, out: Path) -> dict:
    """Load model `name`'s configured SAE, check it reads the run's hook, save it under `out`."""
    from activations.cache import open_cache
    from sae.load import bridge_hook_name, check_fits, load_pretrained, load_sae_folder

    p = cfg.sae.pretrained[name]
    sae = load_sae_folder(p.path, cfg.device) if p.path else load_pretrained(p.release, p.id, cfg.device)
    with open_cache(run / "activations" / name) as c:
        d_model, hooks = c.d_model, c.hooks
    recorded = getattr(sae.cfg.metadata, "hook_name", None)
    if recorded is not None:
        hook = bridge_hook_name(recorded, hooks + [cfg.sae.hook])
        if hook != cfg.sae.hook:
            raise ValueError(f"sae.pretrained[{name}] ({p.describe()}) reads {recorded!r} = {hook}, but sae.hook is "
                             f"{cfg.sae.hook}; set sae.hook to {hook} (and cache it)")
    check_fits(sae, d_model, cfg.sae.hook)
    sae.save_model(str(out))
    return {"pretrained": p.describe(), "hook_name": recorded, "d_sae": int(sae.cfg.d_sae)}


def _evaluate_saes(run: Path, cfg: PairRunConfig, tmp: Path) -> None:
    import json as _json

    from experiments.pairs.tokens import SAERows
    from experiments.sae_suite import cache_sequences
    from sae.evaluate import evaluate_on_cache, spliced_loss
    from sae.load import load_sae_folder

    names = cfg.model_names()
    held = SAERows(cfg.sae.heldout_every, heldout=True)
    caches = {m: run / "activations" / m for m in names}
    result: dict = {"hook": cfg.sae.hook, "heldout_every": cfg.sae.heldout_every, "saes": {}, "transfer": {}}
    for m in names:
        if m in cfg.sae.pretrained:
            result["saes"][m] = {"source": _pretrained(run, cfg, m, tmp / m)}
        else:
            result["saes"][m] = {"source": "trained", "train": _json.loads((tmp / m / "metrics.json").read_text())}
    saes = {m: load_sae_folder(tmp / m, cfg.device) for m in names}
    for m, sae in saes.items():
        result["saes"][m]["heldout"] = own = evaluate_on_cache(sae, caches[m], cfg.sae.hook, where=held)
        result["transfer"][m] = {c: own["explained_variance"] if c == m else  # not read twice
                                 evaluate_on_cache(sae, caches[c], cfg.sae.hook, where=held)["explained_variance"]
                                 for c in names}
        ids, step = cache_sequences(caches[m], 16, lambda cols: cols["example"] % cfg.sae.heldout_every == 0)
        model, _ = load_model(cfg, m)
        result["saes"][m]["spliced"] = spliced_loss(sae, model, cfg.sae.hook, ids, {"step": step})
        del model
        h = result["saes"][m]["heldout"]
        _log(f"  sae {m}: held-out L0 {h['l0']:.1f}, explained variance {h['explained_variance']:.3f}")
    (tmp / "eval.json").write_text(_json.dumps(result, indent=1))


# ---- features and steering ----------------------------------------------------------------
def run_features(run: Path, cfg: PairRunConfig, force: bool) -> None:
    import torch

    from experiments.pairs.analysis import causal_in_base, gold_items, latent_scores
    from experiments.tasks.text import render_prompt
    from features.latent_stats import matched_random_latents
    from sae.load import load_sae_folder

    tmp = _out_dir(run / "features")
    problems = _problems(cfg)
    for name in cfg.model_names():
        t0 = time.perf_counter()
        sae = load_sae_folder(run / "saes" / name, cfg.device)
        # one pass over the cache on rank 0, not one per rank; the ablation below is split
        scores = latent_scores(sae, run / "activations" / name, cfg.sae.hook, cfg.features, cfg.cache.words) \
            if dist_rank_world()[0] == 0 else None
        record = {"model": name, "hook": cfg.sae.hook, **broadcast(scores)}
        if name == "base" and record["top"]:
            model, tok = load_model(cfg, name)
            clean, _, answers = gold_items(problems, [render_prompt(p.question, cfg.task, tok) for p in problems],
                                           cfg.task, cfg.seed)
            controls = matched_random_latents(torch.tensor(record["frequency"]), record["top"], cfg.seed)
            record["random_control"] = controls
            record["causal"] = causal_in_base(model, tok, sae, cfg.sae.hook, record["top"], controls, clean, answers,
                                              cfg.behavior.batch_size)
        _write(tmp, f"{name}.json", record)
        _log(f"  features {name}: top ReasonScore latents {record['top']}"
             + (f" ({record['warning']})" if "warning" in record else "") + f" ({time.perf_counter() - t0:.1f} s)")
    _finish(tmp, run / "features")


def run_steer(run: Path, cfg: PairRunConfig, force: bool) -> None:
    import torch

    from experiments.elicit import gap_recovered
    from experiments.pairs.analysis import gold_items, steering_metrics
    from experiments.tasks.text import render_prompt
    from features.latent_stats import matched_random_latents
    from features.steer import clamp_latents
    from sae.load import load_sae_folder

    tmp = _out_dir(run / "steering")
    problems = _problems(cfg)
    who = cfg.features.steer_sae
    feats = json.loads((run / "features" / f"{who}.json").read_text())
    sae = load_sae_folder(run / "saes" / who, cfg.device)
    top = feats["top"]
    base, tok = load_model(cfg, "base")
    prompts = [render_prompt(p.question, cfg.task, tok) for p in problems]
    clean, bad, answers = gold_items(problems, prompts, cfg.task, cfg.seed)
    ref = steering_metrics(base, tok, cfg.task, cfg.behavior, clean, bad, answers)
    del base
    controls = matched_random_latents(torch.tensor(feats["frequency"]), top, cfg.seed + 1) if top else []
    peak = torch.tensor(feats["max_activation"])
    for v in cfg.models.variants:
        t0 = time.perf_counter()
        model, _ = load_model(cfg, v)
        record = {"variant": v, "steer_sae": who, "hook": cfg.sae.hook, "latents": top, "random_control": controls,
                  "base": ref, "variant_metrics": steering_metrics(model, tok, cfg.task, cfg.behavior, clean, bad,
                                                                   answers), "steered": []}
        if not top:
            record["skipped"] = f"no ReasonScore latents for {who}: {feats.get('warning', 'none chosen')}"
        for s in cfg.features.strengths if top else []:
            for kind, lat in (("reasoning", top), ("random", controls)):
                hook = clamp_latents(sae, lat, (s * peak[lat]).tolist())
                m = steering_metrics(model, tok, cfg.task, cfg.behavior, clean, bad, answers,
                                     fwd_hooks=[(cfg.sae.hook, hook)])
                record["steered"].append({"latents": kind, "strength": s, **m, "recovered": {
                    k: gap_recovered(m[k], ref[k], record["variant_metrics"][k]) for k in ("accuracy", "mistake_changes")}})
        _write(tmp, f"{v}.json", record)
        _log(f"  steer {v}: {len(record['steered'])} interventions ({time.perf_counter() - t0:.1f} s)")
        del model
    _finish(tmp, run / "steering")


# ---- figures and report --------------------------------------------------------------------
FIGURE_NAMES = ("pair_behavior", "pair_steering")


def _figure_files(run: Path, cfg: PairRunConfig) -> list[Path]:
    return [run / "figures" / f"{n}.{ext}" for n in FIGURE_NAMES for ext in ("png", "json")]


def run_figures(run: Path, cfg: PairRunConfig, force: bool) -> None:
    from experiments.pairs.figures import draw_pair_figures

    tmp = temp_dir(run / "figures")
    behavior = {m: b["metrics"] for m, b in load_behavior(run, cfg).items()}
    steering = {v: json.loads(p.read_text()) for v, p in zip(cfg.models.variants, _steer_files(run, cfg))}
    draw_pair_figures(behavior, steering, tmp)
    replace_dir(tmp, run / "figures")


def run_report(run: Path, cfg: PairRunConfig, force: bool) -> None:
    from experiments.pairs.report import build_report, render_markdown

    report = build_report(run, cfg)
    md = render_markdown(report, f"saelab pair report: {run.name}")
    text = json.dumps(report, indent=1)
    write_atomic(run / "report.json", text)
    write_atomic(run / "report.md", md)


TEXT_TASK = ("experiments.tasks.text", "experiments.pairs.config")
SCORING = ("features.reason_score", "features.latent_stats", "features.steer", "experiments.pairs.analysis")

PAIR_STAGES = [
    # cache and sae: the models stage checks that sae.hook is cached (its outputs do not change)
    Stage("models", ("models", "cache", "sae"), lambda run, cfg: [], _model_files, run_models,
          code=("activations.models",)),
    Stage("behavior", ("models", "task", "behavior"), _model_files, _behavior_files, run_behavior,
          code=(*TEXT_TASK, "experiments.pairs.behavior", "activations.generate", "activations.models"),
          distributed=True),
    Stage("cache", ("models", "task", "cache"), lambda run, cfg: _model_files(run, cfg) + _behavior_files(
        run, cfg), _cache_files, run_cache, code=(*TEXT_TASK, "experiments.pairs.tokens", "activations.cache"),
          distributed=True),
    Stage("sae", ("models", "sae"), _cache_files, _sae_files, run_sae,
          code=("sae", "experiments.sae_suite", "experiments.pairs.tokens"),
          distributed=True),
    Stage("features", ("models", "task", "sae", "features"), lambda run, cfg: _cache_files(run, cfg) + _sae_files(
        run, cfg), _feature_files, run_features, code=(*TEXT_TASK, *SCORING, "activations.generate"), distributed=True),
    Stage("steer", ("models", "task", "behavior", "sae", "features"), lambda run, cfg: _feature_files(run, cfg) + _sae_files(
        run, cfg), _steer_files, run_steer, code=(*TEXT_TASK, *SCORING, "experiments.pairs.behavior",
                                                   "activations.generate"),
          distributed=True),
    Stage("figures", ("models",), lambda run, cfg: _behavior_files(run, cfg) + _steer_files(run, cfg), _figure_files,
          run_figures, code=("experiments.pairs.figures", "experiments.figures")),
    Stage("report", ("*",), lambda run, cfg: _behavior_files(run, cfg) + [run / "saes" / "eval.json"] + _feature_files(
        run, cfg) + _steer_files(run, cfg) + _figure_files(run, cfg), lambda run, cfg: [run / "report.json",
                                                                                         run / "report.md"],
          run_report, code=("experiments.pairs.report", "experiments.report")),
]
