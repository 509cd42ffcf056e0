"""Every bad input to the command line, in one table: exit 2, one line on stderr naming what
is wrong (the expected words), no traceback, nothing left behind that looks finished, and
no file of the user's touched (every file's bytes are compared before and after).

The cases are those a hostile test of a fresh clone tried (the 16 it found failing and the
42 that passed), plus the refusals of the one output-folder rule (`activations.atomic`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.cli import main

HOOK = "blocks.1.hook_resid_post"
TRAIN = ["--steps", "3", "--batch_size", "64", "--buffer_rows", "256", "--norm_batches", "1", "--expansion", "2",
         "--k", "4"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny model, its cache, an SAE and a crosscoder saelab wrote, a run directory whose
    stages have not run, and a user's folder that saelab must never touch."""
    import torch

    from activations.cache import CacheWriteConfig, write_cache
    from activations.models import load_bridge
    from experiments.cache_set import CacheSetConfig, token_set
    from experiments.config import to_dict
    from experiments.organisms.tokenizer import build_tokenizer
    from experiments.runconfig import load_run_config
    from experiments.tasks import ArithmeticTask
    from sae.crosscoder import Crosscoder, save_crosscoder
    from sae.train import SAETrainConfig, train_sae
    from tests.helpers import save_tiny_model

    root = tmp_path_factory.mktemp("lab")
    bridge = load_bridge(save_tiny_model(root / "m"))
    ids, labels = token_set(ArithmeticTask(), build_tokenizer(), CacheSetConfig(ks=[2], n_per_k=12), seed=0)
    write_cache(bridge, ids, labels, root / "c", CacheWriteConfig(hooks=[HOOK], chunk_rows=256), {"model": "m"},
                progress=False)
    train_sae(root / "c", HOOK, SAETrainConfig(steps=3, batch_size=64, buffer_rows=256, norm_batches=1, expansion=2,
                                               k=4, checkpoints=0), root / "sae")
    torch.manual_seed(0)
    save_crosscoder(Crosscoder(32, 64, 4), root / "cc", {"hook_name": HOOK})
    run = root / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(load_run_config("quick")[0]), sort_keys=False))
    user = root / "user"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.txt").write_text("keep")
    (user / "sub" / "data.csv").write_text("1,2\n")
    return root


def _tree(*roots: Path) -> dict[str, str]:
    """Every file under `roots` with a hash of its bytes (hidden files included)."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
            elif p.is_symlink() or p.is_dir():
                out[str(p)] = "link" if p.is_symlink() else "dir"
    return out


# ---- the case table ------------------------------------------------------------------
# Each case: (id, argv, words the error line must contain, setup(w, lab) run before it).
# In argv, {lab} is the shared lab and {w} a fresh folder for this case's outputs.

def _copy(name, to):
    return lambda w, lab: shutil.copytree(lab / name, w / to)


def _write(name, text: str | bytes):
    def setup(w, lab):
        p = w / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
    return setup


def _edit_json(folder, file, edit, src="c"):
    def setup(w, lab):
        shutil.copytree(lab / src, w / folder)
        p = w / folder / file
        data = json.loads(p.read_text())
        p.write_text(json.dumps(edit(data)))
    return setup


def _truncate(folder, file, src):
    def setup(w, lab):
        shutil.copytree(lab / src, w / folder)
        p = w / folder / file
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return setup


def _loop(w, lab):
    (w / "loop.yaml").symlink_to("loop.yaml")


def _shard_rows(d):  # an index whose row counts were edited: it disagrees with meta.json
    d["shards"][0]["rows"] += 100
    return d


def _corrupt_shard(w, lab):
    shutil.copytree(lab / "c", w / "c")
    shard = next((w / "c" / "shards").glob("shard-*.h5"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))


def _meta_and_index_rows(w, lab):  # both edited alike: only --verify (the shards' own counts) sees it
    shutil.copytree(lab / "c", w / "c")
    for name in ("meta.json", "index.json"):
        p = w / "c" / name
        d = json.loads(p.read_text())
        d["n_rows"] += 100
        if name == "index.json":
            d["shards"][0]["rows"] += 100
        p.write_text(json.dumps(d))


def _incomplete(w, lab):
    shutil.copytree(lab / "c", w / "c")
    (w / "c" / "index.json").unlink()


def _own_json(keys):
    return _write("own.json", json.dumps({k: 1 for k in keys}))


CASES = [
    # -- top level and argument parsing
    ("no-command", [], ["arguments are required: COMMAND", "saelab --help"], None),
    ("unknown-command", ["nope"], ["invalid choice: 'nope'"], None),
    ("unknown-option", ["run", "--bogus"], ["unrecognized arguments: --bogus", "saelab run --help"], None),
    ("bad-int", ["run", "--seed", "abc"], ["--seed: invalid int value: 'abc'"], None),
    ("bad-float", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s", "--lr", "fast"],
     ["--lr: invalid float value"], None),
    ("missing-required", ["behavior", "--model", "{lab}/m"], ["required: --out"], None),
    # -- configs
    ("config-missing", ["run", "--config", "nope", "--out", "{w}/r"], ["no config 'nope': give one of"], None),
    ("config-missing-yaml", ["run", "--config", "{w}/nope.yaml", "--out", "{w}/r"], ["does not exist"], None),
    ("config-empty", ["run", "--config", "{w}/e.yaml", "--out", "{w}/r"], ["e.yaml is empty"], _write("e.yaml", "")),
    ("config-comments-only", ["run", "--config", "{w}/e.yaml", "--out", "{w}/r"], ["is empty"],
     _write("e.yaml", "# nothing\n")),
    ("config-invalid-yaml", ["run", "--config", "{w}/b.yaml", "--out", "{w}/r"], ["b.yaml:3:1: invalid YAML"],
     _write("b.yaml", "seed: [1,\ntask: 2\n")),
    ("config-directory", ["run", "--config", "{w}/cfg", "--out", "{w}/r"], ["is a directory, not a YAML file"],
     lambda w, lab: (w / "cfg").mkdir()),
    ("config-symlink-loop", ["run", "--config", "{w}/loop.yaml", "--out", "{w}/r"], ["symlink loop"], _loop),
    ("config-not-utf8", ["run", "--config", "{w}/l.yaml", "--out", "{w}/r"], ["l.yaml is not UTF-8"],
     _write("l.yaml", b"seed: 1 # caf\xe9\n")),
    ("config-list", ["run", "--config", "{w}/l.yaml", "--out", "{w}/r"], ["top level must be a mapping"],
     _write("l.yaml", "- 1\n")),
    ("config-unknown-key", ["run", "--config", "{w}/u.yaml", "--out", "{w}/r"], ["unknown key(s) ['nope']"],
     _write("u.yaml", "nope: 1\n")),
    ("config-bad-value", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"], ["task modulus must be >= 2"],
     _write("v.yaml", "task:\n  modulus: 1\n")),
    ("config-wrong-type", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"], ['wrong value type for field "seed"'],
     _write("v.yaml", "seed: [1]\n")),
    ("config-negative-threads", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"], ["threads must be >= 0"],
     _write("v.yaml", "threads: -1\n")),
    ("config-elicit-variant", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"],
     ["elicit.variants: ['nope'] are not fine-tuned variants"], _write("v.yaml", "elicit:\n  variants: [nope]\n")),
    ("config-elicit-eval-split", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"],
     ["elicit.tokens.split must be train"], _write("v.yaml", "elicit:\n  tokens: {split: eval}\n")),
    ("config-elicit-fraction", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"],
     ["elicit.other_fraction must be in [0, 1]"], _write("v.yaml", "elicit:\n  other_fraction: 2\n")),
    ("config-cuda", ["run", "--config", "{w}/v.yaml", "--out", "{w}/r"], ["torch sees no CUDA GPU"],
     _write("v.yaml", "device: cuda\n")),
    ("config-pair-no-variants", ["run", "--config", "{w}/p.yaml", "--out", "{w}/r"],
     ["models.variants must name at least one"], _write("p.yaml", "models:\n  base: {path: x}\n  variants: {}\n")),
    # -- run
    ("run-unknown-stage", ["run", "--config", "quick", "--out", "{w}/r", "--until", "nope"], ["unknown stage 'nope'"],
     None),
    ("run-unknown-force", ["run", "--config", "quick", "--out", "{w}/r", "--force", "nope"], ["unknown stage 'nope'"],
     None),
    ("run-out-file", ["run", "--config", "quick", "--out", "{w}/f.txt"], ["is a file, not a run directory"],
     _write("f.txt", "mine")),
    ("run-out-foreign", ["run", "--config", "quick", "--out", "{lab}/user"], ["is not a saelab run directory"], None),
    ("run-other-config", ["run", "--config", "default", "--out", "{w}/r"], ["written by a different config",
                                                                             "--overwrite"], _copy("run", "r")),
    ("run-user-config-yaml", ["run", "--config", "quick", "--out", "{w}/app", "--overwrite"],
     ["is not a saelab run directory", "left untouched"],
     lambda w, lab: (_write("app/config.yaml", "name: my app\nport: 80\n")(w, lab), _write("app/a.txt", "x")(w, lab))),
    ("run-user-manifest", ["run", "--config", "quick", "--out", "{w}/app", "--overwrite"],
     ["is not a saelab run directory"], _write("app/manifest.json", '{"name": "my web app", "stages": {}}')),
    ("run-bad-manifest", ["run", "--config", "quick", "--out", "{w}/r"], ["is not a saelab manifest"],
     lambda w, lab: (_copy("run", "r")(w, lab), (w / "r" / "manifest.json").write_text("[1]"))),
    # -- behavior
    ("behavior-no-model", ["behavior", "--model", "{w}/nope", "--out", "{w}/o.json"], ["nope"], None),
    ("behavior-out-not-json", ["behavior", "--model", "{lab}/m", "--out", "{w}/o.txt"], ["must be a .json file"], None),
    ("behavior-out-folder", ["behavior", "--model", "{lab}/m", "--out", "{w}/d.json"], ["is a folder"],
     lambda w, lab: (w / "d.json").mkdir()),
    ("behavior-out-foreign", ["behavior", "--model", "{lab}/m", "--out", "{w}/mine.json"],
     ["is not a behaviour result written by saelab"], _write("mine.json", '{"notes": 1}')),
    ("behavior-out-own", ["behavior", "--model", "{lab}/m", "--out", "{w}/own.json"], ["pass --overwrite"],
     _own_json(("model", "reference", "seed", "metrics"))),
    ("behavior-out-lookalike", ["behavior", "--model", "{lab}/m", "--out", "{w}/own.json", "--overwrite"],
     ["is not a behaviour result written by saelab"], _own_json(("model", "metrics"))),
    ("behavior-out-under-file", ["behavior", "--model", "{lab}/m", "--out", "{w}/f.txt/o.json"],
     ["is not a writable folder"], _write("f.txt", "mine")),
    ("behavior-bad-config", ["behavior", "--model", "{lab}/m", "--out", "{w}/o.json", "--config", "nope"],
     ["no config 'nope'"], None),
    # -- cache and cache-info
    ("cache-no-model", ["cache", "--model", "{w}/nope", "--out", "{w}/c"], ["nope"], None),
    ("cache-out-foreign", ["cache", "--model", "{lab}/m", "--out", "{lab}/user"], ["is not an activation cache"], None),
    ("cache-out-file", ["cache", "--model", "{lab}/m", "--out", "{w}/f.txt"], ["is a file"], _write("f.txt", "mine")),
    ("cache-other-settings", ["cache", "--model", "{lab}/m", "--out", "{w}/c", "--config", "quick"],
     ["written with other settings"], _copy("c", "c")),
    ("cache-user-meta", ["cache", "--model", "{lab}/m", "--out", "{w}/d", "--overwrite"],
     ["is not an activation cache", "left untouched"], _write("d/meta.json", '{"author": "me"}')),
    ("cache-files-beside", ["cache", "--model", "{lab}/m", "--out", "{w}/c", "--config", "quick", "--overwrite"],
     ["files the cache writer did not make (notes.txt)"],
     lambda w, lab: (_copy("c", "c")(w, lab), (w / "c" / "notes.txt").write_text("mine"))),
    ("info-missing", ["cache-info", "{w}/nope"], ["is not an activation cache"], None),
    ("info-foreign", ["cache-info", "{lab}/user"], ["is not an activation cache"], None),
    ("info-meta-garbage", ["cache-info", "{w}/c"], ["meta.json is unreadable"],
     lambda w, lab: (_copy("c", "c")(w, lab), (w / "c" / "meta.json").write_text("{oops"))),
    ("info-meta-missing-keys", ["cache-info", "{w}/c"], ["malformed cache metadata"],
     lambda w, lab: (_copy("c", "c")(w, lab), (w / "c" / "meta.json").write_text("{}"))),
    ("info-index-rows-edited", ["cache-info", "{w}/c"], ["rows in 1 shards but meta.json says"],
     _edit_json("c", "index.json", _shard_rows)),
    ("info-rows-verify", ["cache-info", "{w}/c", "--verify"], ["rows where index.json says"], _meta_and_index_rows),
    ("info-truncated-shard", ["cache-info", "{w}/c"], ["missing or truncated"],
     lambda w, lab: (_copy("c", "c")(w, lab), [p.write_bytes(p.read_bytes()[:100])
                                               for p in (w / "c" / "shards").glob("shard-*.h5")])),
    ("info-corrupted-verify", ["cache-info", "{w}/c", "--verify"], ["is corrupted"], _corrupt_shard),
    ("info-incomplete-verify", ["cache-info", "{w}/c", "--verify"], ["is incomplete"], _incomplete),
    # -- train-sae (the data-loss case first)
    ("train-out-foreign", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{lab}/user", *TRAIN],
     ["does not hold an SAE written by saelab", "left untouched"], None),
    ("train-out-foreign-overwrite", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{lab}/user",
                                     "--overwrite", *TRAIN], ["does not hold an SAE"], None),
    ("crosscoder-out-foreign", ["train-sae", "--cache", "{lab}/c", "--crosscoder_with", "{lab}/c", "--hook", HOOK,
                                "--out", "{lab}/user", "--steps", "3"], ["does not hold a crosscoder written by"],
     None),
    ("train-out-own", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s", *TRAIN],
     ["already holds an SAE; pass --overwrite"], _copy("sae", "s")),
    ("train-out-file", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/f.txt", *TRAIN],
     ["is a file, not a folder"], _write("f.txt", "mine")),
    ("train-out-symlink", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/link", *TRAIN],
     ["is a symbolic link"], lambda w, lab: ((w / "d").mkdir(), (w / "link").symlink_to(w / "d"))),
    ("train-out-own-with-user-files", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s",
                                       "--overwrite", *TRAIN], ["files saelab did not write there (notes.txt)"],
     lambda w, lab: (_copy("sae", "s")(w, lab), (w / "s" / "notes.txt").write_text("mine"))),
    ("train-out-under-file", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/f.txt/s", *TRAIN],
     ["is not a writable folder"], _write("f.txt", "mine")),
    ("train-k-negative", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s", "--k", "-3"],
     ["sae k must be >= 1, got -3"], None),
    ("train-steps-zero", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s", "--steps", "0"],
     ["sae steps must be >= 1"], None),
    ("train-checkpoints-negative", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s",
                                    "--checkpoints", "-1"], ["checkpoints must be >= 0"], None),
    ("train-no-cache", ["train-sae", "--cache", "{w}/nope", "--hook", HOOK, "--out", "{w}/s"],
     ["is not an activation cache"], None),
    ("train-bad-hook", ["train-sae", "--cache", "{lab}/c", "--hook", "nope", "--out", "{w}/s", *TRAIN],
     ["hook 'nope' is not in the cache"], None),
    ("train-bad-role", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s", "--role", "x"],
     ["--role must be one of"], None),
    ("train-bad-variant", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s", "--variant", "x"],
     ["--variant must be one of"], None),
    ("train-bad-architecture", ["train-sae", "--cache", "{lab}/c", "--hook", HOOK, "--out", "{w}/s",
                                "--architecture", "topkk"], ["--architecture: invalid choice: 'topkk' (choose from",
                                                             "'batchtopk'"], None),
    ("crosscoder-options", ["train-sae", "--cache", "{lab}/c", "--crosscoder_with", "{lab}/c", "--hook", HOOK,
                            "--out", "{w}/x", "--architecture", "gated"], ["do not apply to a crosscoder"], None),
    ("crosscoder-no-cache", ["train-sae", "--cache", "{lab}/c", "--crosscoder_with", "{w}/nope", "--hook", HOOK,
                             "--out", "{w}/x", "--steps", "3"], ["is not an activation cache"], None),
    # -- eval-sae
    ("eval-no-sae", ["eval-sae", "--cache", "{lab}/c"], ["give either --sae FOLDER or --release"], None),
    ("eval-release-no-id", ["eval-sae", "--cache", "{lab}/c", "--release", "x"], ["--release needs --sae_id"], None),
    ("eval-unknown-release", ["eval-sae", "--cache", "{lab}/c", "--release", "nope-release", "--sae_id", "x"],
     ["unknown SAELens release 'nope-release'"], None),
    ("eval-sae-missing", ["eval-sae", "--cache", "{lab}/c", "--sae", "{w}/nope"], ["no SAE folder at"], None),
    ("eval-sae-foreign", ["eval-sae", "--cache", "{lab}/c", "--sae", "{lab}/user"], ["is not a SAELens SAE folder"],
     None),
    ("eval-sae-crosscoder", ["eval-sae", "--cache", "{lab}/c", "--sae", "{lab}/cc"], ["is a saelab crosscoder"], None),
    ("eval-sae-truncated", ["eval-sae", "--cache", "{lab}/c", "--sae", "{w}/s"],
     ["cannot load the SAE in", "SafetensorError", "damaged"], _truncate("s", "sae_weights.safetensors", "sae")),
    ("eval-sae-d-in-string", ["eval-sae", "--cache", "{lab}/c", "--sae", "{w}/s"],
     ["cfg.json: d_in='32' must be whole numbers"], _edit_json("s", "cfg.json", lambda d: {**d, "d_in": "32"}, "sae")),
    ("eval-sae-cfg-list", ["eval-sae", "--cache", "{lab}/c", "--sae", "{w}/s"], ["cfg.json is a JSON list"],
     _edit_json("s", "cfg.json", lambda d: [1, 2], "sae")),
    ("eval-sae-cfg-garbage", ["eval-sae", "--cache", "{lab}/c", "--sae", "{w}/s"], ["cannot load the SAE in"],
     lambda w, lab: (_copy("sae", "s")(w, lab), (w / "s" / "cfg.json").write_text("{oops"))),
    ("eval-bad-hook", ["eval-sae", "--cache", "{lab}/c", "--sae", "{lab}/sae", "--hook", "nope"],
     ["hook 'nope' is not in the cache"], None),
    ("eval-no-cache", ["eval-sae", "--cache", "{w}/nope", "--sae", "{lab}/sae"], ["is not an activation cache"], None),
    ("eval-out-folder", ["eval-sae", "--cache", "{lab}/c", "--sae", "{lab}/sae", "--out", "{w}/d.json"],
     ["is a folder"], lambda w, lab: (w / "d.json").mkdir()),
    ("eval-out-not-json", ["eval-sae", "--cache", "{lab}/c", "--sae", "{lab}/sae", "--out", "{w}/d"],
     ["must be a .json file"], None),
    ("eval-out-own", ["eval-sae", "--cache", "{lab}/c", "--sae", "{lab}/sae", "--out", "{w}/own.json"],
     ["pass --overwrite"], _own_json(("sae", "cache", "hook", "role", "variant", "reconstruction"))),
    # -- stages of a run directory, figures, browse
    ("features-not-run", ["features", "{w}/nope"], ["is not a run directory (no config.yaml)"], None),
    ("steer-foreign", ["steer", "{lab}/user"], ["is not a run directory"], None),
    ("figures-not-run", ["figures", "{lab}/user"], ["is not a run directory"], None),
    ("figures-stage-missing", ["figures", "{lab}/run"], ["needs the"], None),
    ("browse-not-run", ["browse", "{w}/nope", "--out", "{w}/b"], ["is not a run directory"], None),
    ("browse-stage-missing", ["browse", "{lab}/run", "--out", "{w}/b"], ["needs the"], None),
    ("browse-out-foreign", ["browse", "{lab}/run", "--out", "{lab}/user"], ["does not hold a feature browser"], None),
    ("browse-out-own", ["browse", "{lab}/run", "--out", "{w}/b"], ["already holds a feature browser"],
     _write("b/browser.json", "{}")),
    ("browse-top-zero", ["browse", "{lab}/run", "--out", "{w}/b", "--top", "0"], ["top, quantiles, bins"], None),
    ("browse-no-out", ["browse", "{lab}/run"], ["required: --out"], None),
    # -- tiny-pair
    ("tiny-bad-arch", ["tiny-pair", "--out", "{w}/p", "--arch", "nope"], ["--arch must be one of"], None),
    ("tiny-negative-perturb", ["tiny-pair", "--out", "{w}/p", "--perturb", "-1"], ["--perturb must be >= 0"], None),
    ("tiny-out-foreign", ["tiny-pair", "--out", "{lab}/user"], ["does not hold a tiny model pair"], None),
    ("tiny-out-own", ["tiny-pair", "--out", "{w}/p"], ["already holds a tiny model pair"],
     _write("p/tiny-pair.json", "{}")),
    ("tiny-out-own-with-user-files", ["tiny-pair", "--out", "{w}/p", "--overwrite"],
     ["files saelab did not write there (notes.txt)"],
     lambda w, lab: (_write("p/tiny-pair.json", "{}")(w, lab), _write("p/notes.txt", "mine")(w, lab))),
]


@pytest.mark.parametrize("name, argv, words, setup", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(lab, tmp_path, capsys, name, argv, words, setup):
    w = tmp_path / "w"
    w.mkdir()
    if setup is not None:
        setup(w, lab)
    before = _tree(lab, w)
    argv = [a.format(lab=lab, w=w) for a in argv]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("saelab") and ": error: " in lines[0], lines[0]
    for word in words:
        assert word.format(lab=lab, w=w) in lines[0], lines[0]
    assert _tree(lab, w) == before  # nothing written, nothing of the user's touched


def test_the_commands_own_outputs_are_replaced_with_overwrite(lab, tmp_path, capsys):
    """The other half of the rule: an output of the command's own kind is replaced when
    --overwrite is given (and a fresh path just works)."""
    out = tmp_path / "s"
    args = ["train-sae", "--cache", str(lab / "c"), "--hook", HOOK, "--out", str(out), "--checkpoints", "0", *TRAIN]
    assert main(args) == 0
    first = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text("{}")  # a mark that the folder was replaced, not kept
    assert main(args) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text()) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporaries left beside it


def test_a_failed_write_leaves_nothing_and_names_the_path(lab, tmp_path, capsys, monkeypatch):
    """A full disk, faked at the writers: one line naming --out, no traceback, and neither
    the SAE folder nor a half-written model or temporary is left."""
    import errno

    from sae_lens.saes.sae import TrainingSAE
    from transformers import PreTrainedModel

    def full_disk(self, path, *a, **k):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text("{}")  # a partial write, as a real full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TrainingSAE, "save_inference_model", full_disk)
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full_disk)
    for argv, out in ((["train-sae", "--cache", str(lab / "c"), "--hook", HOOK, "--checkpoints", "0", *TRAIN],
                       tmp_path / "s"), (["tiny-pair"], tmp_path / "p")):
        capsys.readouterr()
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "no space left on the device while writing" in err[-1] and str(out) in err[-1], err
        assert "Traceback" not in "".join(err)
        assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="needs unshare (user and mount namespaces) for a small tmpfs")
def test_a_real_full_disk_in_a_small_tmpfs(lab, tmp_path):
    """The same on a real full disk: a 24 kB tmpfs in a private mount namespace (~30 s of
    two fresh processes, so `slow`; .ci/run runs it)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    py = sys.executable
    script = (f"mount -t tmpfs -o size=24k tmpfs {disk} && cd {disk} && "
              f"{py} -m experiments.cli train-sae --cache {lab / 'c'} --hook {HOOK} --out sae --checkpoints 0 "
              f"{' '.join(TRAIN).replace('--expansion 2', '--expansion 8')}; echo rc=$?; "
              f"{py} -m experiments.cli tiny-pair --out pair; echo rc=$?; ls -A {disk}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.stdout.split() == ["rc=2", "rc=2"], (r.stdout, r.stderr)  # and `ls -A` of the disk printed nothing
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert errors == [f"saelab {c}: error: no space left on the device while writing {o}: free some space there, or "
                      "write to another disk"
                      for c, o in (("train-sae", "sae"), ("tiny-pair", "pair"))], r.stderr
    assert "Traceback" not in r.stderr


def test_a_real_process_prints_one_line_and_debug_shows_the_traceback(lab):
    """Outside pytest: a config check that fails while the arguments are parsed is still one
    line and exit 2; SAELAB_DEBUG=1 shows the traceback."""
    argv = [sys.executable, "-m", "experiments.cli", "train-sae", "--cache", str(lab / "c"), "--hook", HOOK,
            "--out", str(lab / "never"), "--k", "-3"]
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.splitlines() == ["saelab train-sae: error: sae k must be >= 1, got -3"]
    r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "SAELAB_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr and "ValueError: sae k must be >= 1" in r.stderr
    assert not (lab / "never").exists()


def test_a_failed_rename_puts_the_previous_output_back(tmp_path, monkeypatch):
    """replace_dir: if moving the new folder into place fails, the old one is where it was
    (not left hidden as .NAME.old-PID) and the error propagates."""
    from activations import atomic

    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("previous")
    calls = []
    real = os.replace

    def flaky(a, b):
        calls.append((Path(a).name, Path(b).name))
        if len(calls) == 2:  # the second rename: the new folder into place
            raise OSError(28, "No space left on device")
        real(a, b)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(OSError):
        with atomic.building(final) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (final / "old.txt").read_text() == "previous" and len(calls) == 3
