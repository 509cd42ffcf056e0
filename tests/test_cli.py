"""The command line: help from the config dataclasses, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from experiments.cli import main
from experiments.config import from_dict
from experiments.organisms.train import OptimConfig
from experiments.runconfig import RunConfig, load_run_config


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.cli", *args], capture_output=True, text=True)


def test_help_lists_subcommands_and_field_docs():
    top = run_cli("--help")
    assert top.returncode == 0 and "run" in top.stdout and "behavior" in top.stdout
    sub = run_cli("run", "--help")
    assert sub.returncode == 0
    assert "A built-in config (`quick`, `default`) or a path to a YAML file." in " ".join(sub.stdout.split())
    assert "Override the config's seed." in " ".join(sub.stdout.split())


@pytest.mark.parametrize("yaml_text, msg", [
    ("organisms:\n  base:\n    stepz: 3\n", "organisms.base: unknown key(s) ['stepz']; allowed: ks, unanswerable_fraction"),
    ("task:\n  modulus: 1\n", "task modulus must be >= 2"),
    ("organisms:\n  variants:\n    x: {recipe: sft-foo}\n", "unknown recipe 'sft-foo'"),
    ("organisms:\n  variants:\n    x: {recipe: dpo, beta: -1}\n", "dpo needs beta > 0"),
    ("seed: [1, 2]\n", 'wrong value type for field "seed"'),
    ("task: 3\n", "task must be a mapping of TaskConfig fields, got int"),
    ("- 1\n", "the top level must be a mapping"),
    ("behavior:\n  reference: nope\n", "behavior.reference 'nope' is not a model of this run"),
    ("behavior:\n  nn: 3\n", "behavior: unknown key(s) ['nn']"),
    ("behavior:\n  ks: [2, 2]\n", "behavior.ks must be a non-empty list of distinct chain lengths"),
    ("device: cuda\n", "torch sees no CUDA GPU here"),
    ("sae:\n  hook: blocks.7.hook_resid_post\n", "sae.hook 'blocks.7.hook_resid_post' is not cached"),
    ("sae:\n  train: {architecture: topkk}\n", "sae.train.architecture must be one of ["),
    ("sae:\n  frontier: [{architecture: gated, options: {k: 3}}]\n",
     "sae.frontier[0]: sae options ['k'] are not fields of SAELens' GatedTrainingSAEConfig"),
    ("sae:\n  frontier: [{architecture: gated}, {architecture: gated}]\n", "two points with the same settings"),
    ("sae:\n  crosscoder_variants: [nope]\n", "sae.crosscoder_variants: ['nope'] are not fine-tuned variants"),
    ("sae:\n  heldout_every: 1\n", "sae.heldout_every must be >= 2"),
    ("sae:\n  crosscoder: {k: 0}\n", "crosscoder k must be >= 1"),
    ("features:\n  variants: [nope]\n", "features.variants: ['nope'] are not fine-tuned variants"),
    ("features:\n  latent_counts: []\n", "features.latent_counts must be a non-empty list"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys, yaml_text, msg):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    code = main(["run", "--config", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and msg in err[-1] and err[-1].startswith("saelab run: error:")
    assert not (tmp_path / "run").exists()


def test_missing_config_names_the_builtins(capsys):
    assert main(["run", "--config", "nope"]) == 2
    assert ("no config 'nope': give one of ['default', 'findings', 'full', 'pair-qwen2.5-0.5b', 'pair-qwen2.5-math-1.5b-r1', "
            "'pair-r1-distill-llama-8b', 'pair-smollm2-cpu', 'pair-smollm2-findings', 'pair-tiny', 'quick']") in capsys.readouterr().err


def test_builtin_configs_load_and_round_trip():
    from experiments.config import to_dict

    from experiments.organisms.recipes import RECIPES

    for name in ("quick", "default", "findings", "full"):
        cfg, _ = load_run_config(name)
        assert from_dict(RunConfig, to_dict(cfg), name) == cfg
        recipes = {v.recipe for v in cfg.organisms.parsed_variants()}
        if name in ("quick", "full"):  # quick and full train every recipe
            assert recipes == set(RECIPES), name
    assert {v.recipe for v in load_run_config("default")[0].organisms.parsed_variants()} == {
        "sft-noisy-trace", "sft-direct", "sft-answer-only", "sft-no-abstain", "dpo"}
    assert from_dict(OptimConfig, {"steps": 5}, "x").steps == 5
