"""The models stage of a pair run: find each model (fast failure offline, before hours of
generation), check they share one tokenizer and that sae.hook is cached, and record what
was found into models/<name>.json."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.rundir import RunDir


def model_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.model_record(m) for m in cfg.model_names()]


def run_models(run: RunDir, cfg, force: bool) -> None:
    from transformers import AutoConfig

    from activations.cache.writer import expand_hooks
    from activations.models import check_available, check_same_tokenizer, tokenizer_hash, weights_hash
    from activations.atomic import replace_dir, temp_dir
    from activations.progress import log
    from experiments.pairs.stages.load import tokenizer_of
    from sae.load import check_pretrained

    for p in cfg.sae.pretrained.values():  # before hours of generation, not after
        if p.path is None:
            check_pretrained(p.release, p.id)
        elif not Path(p.path).is_dir():
            raise FileNotFoundError(f"sae.pretrained: no SAE folder {p.path}")
    tmp = temp_dir(run.models)
    base_tok = None
    for name in cfg.model_names():
        note = None
        spec = cfg.spec(name, run)
        check_available(spec)
        tok = tokenizer_of(run, cfg, name)
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
        (tmp / run.model_record(name).name).write_text(json.dumps(record, indent=1))
        log(f"  model {name}: {spec.path} ({hf.model_type})" + (f"; note: {note}" if note else ""))
    replace_dir(tmp, run.models)
