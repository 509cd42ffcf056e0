"""`saelab run` and `saelab behavior` on the quick config: the run directory, the report,
stage skipping, --force, interruption, determinism, and one-line errors."""

import json
from pathlib import Path
import shutil

import pytest
import torch
import yaml

from experiments.cli import main
from experiments.engine.runner import run_stages as run_pipeline
from experiments.figures.behaviour import BEHAVIOUR as FIGURES
from experiments.runconfig import load_run_config
from features import fmt
from experiments.organisms.study import STAGES

REPORT_KEYS = ["accuracy", "early_answering_aoc", "corruption_follow_rate", "corruption_stay_rate",
               "paraphrase_accuracy", "filler_accuracy", "info_gain_per_step", "abstention", "cot_length"]


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_run_directory_report_and_figures(quick_run):
    run, results = quick_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(manifest["stages"]) == [s.name for s in STAGES]
    for rec in manifest["stages"].values():
        assert rec["seconds"] >= 0 and len(rec["inputs_hash"]) == 16 and rec["outputs"]
    assert {"torch", "transformers", "transformer-lens", "sae-lens", "python"} <= set(manifest["versions"])
    assert manifest["seed"] == 0 and "git_revision" in manifest
    cfg, _ = load_run_config("quick")
    assert yaml.safe_load((run / "config.yaml").read_text())["behavior"]["n"] == cfg.behavior.n

    report = json.loads((run / "report.json").read_text())
    assert list(report["behavior"]) == ["base", "sft-noisy-trace", "sft-direct", "sft-answer-only",
                                        "sft-no-abstain", "dpo", "sft-cot", "sft-truncated-cot", "sft-filler",
                                        "sft-paraphrase", "sft-hollow-steps", "sft-verbosity", "sft-switch", "sft-format",
                                        "dpo-format", "sft-instruction"]
    for v, r in report["behavior"].items():
        for key in REPORT_KEYS:
            assert key in r, (v, key)
        assert all(c["n"] == cfg.behavior.n for c in r["accuracy"].values())
        if v != "sft-hollow-steps":  # its 15 quick steps write no well-formed doubled CoT: nothing to cut
            assert r["early_answering_aoc"]["n"] > 0 and r["corruption_follow_rate"]["n"] > 0
        assert r["abstention"]["recall"]["n"] == cfg.behavior.n and r["cot_length"]["n"] > 0
    change = report["relative_change_vs_reference"]["sft-no-abstain"]["abstention_recall"]
    rb, rv = (report["behavior"][m]["abstention"]["recall"]["value"] for m in ("base", "sft-no-abstain"))
    assert change == pytest.approx((rv - rb) / rb)

    md = (run / "report.md").read_text()
    assert "| metric | base | sft-noisy-trace |" in md
    # pooled over the corruptions of each problem: never narrower than Wilson's interval of the items
    from features.stats import wilson

    for r in report["behavior"].values():
        f = r["corruption_follow_rate"]
        if f["value"] is not None:
            lo, hi = wilson(round(f["value"] * f["n"]), f["n"])
            assert f["ci95"][0] <= lo + 1e-12 and f["ci95"][1] >= hi - 1e-12, f
    paired = report["paired_vs_reference"]["sft-no-abstain"]["abstention_recall"]["relative"]
    assert paired["value"] == pytest.approx(change) and paired["ci95"][0] <= change <= paired["ci95"][1]
    assert f"| sft-no-abstain | " in md and f"{fmt.change(paired)} ({rv:.2f} vs {rb:.2f})" in md
    for name in FIGURES:
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
        data = json.loads((run / "figures" / f"{name}.json").read_text())
        assert data["title"] and f"figures/{name}.png" in md
    # the activation caches: one per model, token-aligned pairs, sizes in the report
    from activations.cache import open_paired

    for name in report["behavior"]:
        assert report["cache"][name]["bytes"] > 0 and report["cache"][name]["rows"] == report["cache"]["base"]["rows"]
    with open_paired(run / "activations" / "base", run / "activations" / "sft-noisy-trace") as pair:
        a, b = next(iter(pair.batches("blocks.1.hook_resid_post", 64)))
        assert a.shape == b.shape == (64, 64) and not torch.equal(a, b)
    assert "## Activation caches" in md
    acc = json.loads((run / "figures" / "accuracy_by_k.json").read_text())
    assert acc["series"]["base"][0]["value"] == results["base"]["accuracy"]["1"]["value"]
    assert not list(run.glob("**/.*tmp*"))


def test_rerun_skips_finished_stages_and_force_reruns_one(quick_run):
    run, _ = quick_run
    cfg, _ = load_run_config("quick")
    logs = []
    stage_log = lambda name: next(line for line in logs if line.startswith(f"[{name}]")  # noqa: E731
                                  and line != f"[{name}] started")
    run_pipeline(cfg, run, STAGES, log=logs.append)
    assert logs[:len(STAGES)] == [f"[{s.name}] up to date, skipped" for s in STAGES]
    logs.clear()
    run_pipeline(cfg, run, STAGES, force=["figures"], log=logs.append)
    assert stage_log("figures").startswith("[figures] done in")
    # the figures' data did not change, so the report's inputs did not either
    assert stage_log("report") == "[report] up to date, skipped"
    logs.clear()
    (run / "report.md").unlink()  # a deleted output makes its stage run again
    run_pipeline(cfg, run, STAGES, log=logs.append)
    assert stage_log("report").startswith("[report] done") and (run / "report.md").is_file()
    logs.clear()
    run_pipeline(cfg, run, STAGES, force=["behavior"], until="organisms", log=logs.append)
    assert logs[0] == "[organisms] up to date, skipped" and logs[1].startswith("run ") and len(logs) == 2
    with pytest.raises(ValueError, match="unknown stage 'figure': stages are organisms, behavior, cache, sae, features, steer, elicit, figures, report"):
        run_pipeline(cfg, run, STAGES, force=["figure"])


def test_interrupted_stage_leaves_nothing_that_looks_finished(quick_run, tmp_path, monkeypatch):
    run = copy_run(quick_run[0], tmp_path / "run")
    before = {p.name: p.read_text() for p in (run / "behavior").iterdir()}
    cfg, _ = load_run_config("quick")

    from experiments.behavior import model_eval
    real, calls = model_eval.evaluate_model, []

    def killed_on_third(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(model_eval, "evaluate_model", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, run, STAGES, force=["behavior"], log=lambda *a: None)
    # the finished outputs of the earlier run are untouched (the new ones are written only
    # once every model is evaluated, into a temporary folder renamed when whole) ...
    assert {p.name: p.read_text() for p in (run / "behavior").iterdir()} == before
    # ... and the manifest no longer vouches for the stage that was being rewritten
    assert "behavior" not in json.loads((run / "manifest.json").read_text())["stages"]
    monkeypatch.setattr(model_eval, "evaluate_model", real)
    logs = []
    run_pipeline(cfg, run, STAGES, log=logs.append)
    assert logs[1:3] == ["[behavior] started", logs[2]] and logs[2].startswith("[behavior] done")
    assert not list(run.glob("**/.*tmp*")) and logs[3] == "[cache] up to date, skipped"
    from tests.test_golden import differences  # the same numbers; wall-clock times are not numbers of the run

    assert differences(json.loads((quick_run[0] / "report.json").read_text()),
                       json.loads((run / "report.json").read_text())) == []


def test_a_kill_between_renames_restores_the_old_output(tmp_path):
    from activations.atomic import clean_temporaries

    (tmp_path / ".behavior.old-77").mkdir()            # the old output, moved aside ...
    (tmp_path / ".behavior.old-77" / "a.json").write_text("old")
    (tmp_path / ".behavior.tmp-77").mkdir()            # ... and the new one never moved in
    (tmp_path / ".figures.old-78").mkdir()             # an old copy whose replacement did arrive
    (tmp_path / "figures").mkdir()
    clean_temporaries(tmp_path)
    assert (tmp_path / "behavior" / "a.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["behavior", "figures"]


@pytest.mark.slow  # a second quick run (the golden test already pins this one's numbers)
def test_same_config_and_seed_give_identical_report(quick_run, tmp_path):
    cfg, _ = load_run_config("quick")
    run_pipeline(cfg, tmp_path / "again", STAGES, log=lambda *a: None)
    assert json.loads((tmp_path / "again" / "report.json").read_text()) == \
        json.loads((quick_run[0] / "report.json").read_text())


def test_run_dir_of_another_config_is_refused(quick_run, tmp_path, capsys):
    run = copy_run(quick_run[0], tmp_path / "run")
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["behavior"]["n"] = 7
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(data))
    before = (run / "manifest.json").read_text()
    assert main(["run", "--config", str(tmp_path / "other.yaml"), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("saelab run: error:") and "written by a different config (differs in: behavior)" in err[-1]
    assert (run / "manifest.json").read_text() == before
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    assert main(["run", "--config", "quick", "--out", str(tmp_path / "junk")]) == 2
    assert "is not a saelab run directory" in capsys.readouterr().err
    assert main(["run", "--config", "quick", "--out", str(tmp_path / "junk" / "notes.txt")]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    (run / "config.yaml").write_text("a: [")
    assert main(["run", "--config", "quick", "--out", str(run)]) == 2
    assert "config.yaml is not valid YAML" in capsys.readouterr().err


def test_a_second_run_on_the_same_directory_is_refused(quick_run, tmp_path, capsys):
    import fcntl

    run = copy_run(quick_run[0], tmp_path / "run")
    with open(run / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["run", "--config", "quick", "--out", str(run)]) == 2
    assert "another saelab run is using" in capsys.readouterr().err


def test_behavior_command_on_one_model(quick_run, tmp_path, capsys):
    run, results = quick_run
    out = tmp_path / "sub" / "direct.json"
    code = main(["behavior", "--model", str(run / "models" / "sft-direct"), "--reference",
                 str(run / "models" / "base"), "--config", "quick", "--out", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["metrics"] == results["sft-direct"]  # same as in the run


@pytest.mark.parametrize("args, msg", [
    (["--model", "no/such/folder"], "no model at 'no/such/folder'"),
    (["--model", "{run}/models"], "has no config.json: not a save_pretrained model folder"),
    (["--model", "{run}/models/base", "--reference", "nowhere"], "no model at 'nowhere'"),
    (["--model", "{run}/models/base", "--out", "{tmp}/x.txt"], "--out must be a .json file"),
    (["--model", "{run}/models/base", "--out", "{run}/behavior"], "--out must be a .json file"),
])
def test_behavior_command_errors(quick_run, tmp_path, capsys, args, msg):
    args = [a.format(run=quick_run[0], tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "x.json")]
    assert main(["behavior", "--config", "quick", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("saelab behavior: error:") and msg in err[0]
    assert not list(tmp_path.glob("*.json"))


def test_behavior_refuses_a_model_of_another_task(quick_run, tmp_path, capsys):
    (tmp_path / "t.yaml").write_text("task: {modulus: 7}\n")
    code = main(["behavior", "--model", str(quick_run[0] / "models" / "base"), "--config", str(tmp_path / "t.yaml"),
                 "--out", str(tmp_path / "x.json")])
    assert code == 2 and "was trained on task" in capsys.readouterr().err



@pytest.mark.slow  # a second organisms pipeline (~70 s): .ci/run runs it with the other slow tests
def test_an_organisms_run_can_load_an_sae_folder_instead_of_training_one(quick_run, tmp_path):
    """sae.pretrained.<model>: {path: FOLDER} loads that SAE (here another run's) for the
    model, checks it reads the hook, evaluates it like a trained one, and the later stages use it."""
    from safetensors.torch import load_file

    src = quick_run[0]
    run = copy_run(src, tmp_path / "run")
    data = yaml.safe_load((run / "config.yaml").read_text())
    folder = tmp_path / "external-sae"
    shutil.copytree(src / "saes" / "sft-direct", folder)
    data["sae"]["pretrained"] = {"sft-direct": {"path": str(folder)}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(tmp_path / "c.yaml"), "--out", str(run), "--overwrite", "--until", "sae"]) == 0
    ev = json.loads((run / "saes" / "eval.json").read_text())
    assert ev["saes"]["sft-direct"]["source"]["pretrained"] == str(folder) and "train" not in ev["saes"]["sft-direct"]
    assert ev["saes"]["base"]["source"] == "trained"
    weights = [load_file(p / "sae_weights.safetensors") for p in (folder, run / "saes" / "sft-direct")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the same SAE, evaluated on the same held-out rows: the same numbers as when it was trained
    old = json.loads((src / "saes" / "eval.json").read_text())["saes"]["sft-direct"]
    assert ev["saes"]["sft-direct"]["heldout"] == old["heldout"]
    from experiments.report.summaries import sae_summary

    summary = sae_summary(ev)["saes"]["sft-direct"]
    assert summary["architecture"] == "pretrained" and summary["pretrained"] == str(folder)
    data["sae"]["pretrained"] = {"sft-direct": {"path": str(tmp_path / "nowhere")}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "r2"), "--until", "sae"]) == 2


@pytest.mark.slow
def test_torchrun_two_ranks_give_the_one_process_report(tmp_path):
    """The quick organisms run under torchrun (2 ranks, gloo) writes the same report.json as
    one process, bit for bit; both ranks write cache shards and train SAEs."""
    import os
    import socket
    import subprocess
    import sys

    import h5py

    data = yaml.safe_load((Path(__file__).parents[1] / "experiments" / "configs" / "quick.yaml").read_text())
    data["threads"] = 1  # the same threads in both runs: float reductions then agree bit for bit
    cfg = tmp_path / "quick1.yaml"
    cfg.write_text(yaml.safe_dump(data))
    one, two = tmp_path / "one", tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "run", "--config", str(cfg), "--out", str(one)],
                          cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
                           "-m", "experiments.cli", "run", "--config", str(cfg), "--out", str(two)],
                          cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((two / "manifest.json").read_text())["world_size"] == 2
    assert (one / "report.json").read_bytes() == (two / "report.json").read_bytes()
    for m in ("base", "dpo"):
        ranks = {int(h5py.File(p, "r").attrs["rank"]) for p in (two / "activations" / m).glob("shards/*.h5")}
        assert ranks == {0, 1}
    assert "(rank 1)" in done.stdout and "(rank 0)" in done.stdout  # each rank trained SAEs


def test_the_elicit_stage_on_the_quick_run(quick_run):
    """The elicit stage's record: a training set of its own (train split), the SAE and the
    transcoder of each model, the ladder whose top rung (all latents and the error term) is
    the patching oracle, every base-free intervention with a chosen size and its null, and
    the report's section and claim."""
    run, _ = quick_run
    rec = json.loads((run / "elicit" / "sft-noisy-trace.json").read_text())
    cfg, _ = load_run_config("quick")
    assert rec["training_set"]["config"]["split"] == "train" and rec["training_set"]["tokens"] > 10_000
    site = rec["sites"]["blocks.1.hook_resid_post"]
    for st in ("heldout", "trained", "choose"):
        for metric in ("follow", "accuracy"):
            assert site["all_latents_and_error"]["metrics"][st][metric]["value"] == pytest.approx(
                site["oracle"]["metrics"][st][metric]["value"], abs=1e-9), (st, metric)
    d_sae = cfg.elicit.sae.expansion * cfg.organisms.model.d_model
    assert [e["n"] for e in site["ladder"]] == [n for n in cfg.elicit.ladder_counts if n < d_sae] + [d_sae]
    for name in ("ablate_shortcut_latents", "project_shortcut_subspace", "clamp_value_latents",
                 "clamp_value_latents_base_means"):
        r = site[name]
        half = [n for n in cfg.elicit.counts if n <= d_sae // 2]  # a matched null needs unused latents
        assert [e["n"] for e in r["entries"]] == (cfg.elicit.counts if name.startswith("clamp") else half)
        if r["chosen"] is not None:
            assert r["null"]["n"] == cfg.elicit.null_draws
    assert len(site["explanations"]) == d_sae and any(e for e in site["explanations"])
    assert set(rec["transcoders"]["transcoder@1"]) == {"base", "sft-noisy-trace"}
    # the crosscoder at its site: classes of every latent, dead fraction on held-out rows, and
    # its fine-tuned-leaning latents ablated with a null wherever a size was eligible
    cc = rec["crosscoders"]["blocks.1.hook_resid_post"]
    d_cc = cfg.elicit.crosscoder.expansion * cfg.organisms.model.d_model
    assert len(cc["latent_class"]) == len(cc["delta"]) == len(cc["explanations"]) == d_cc
    assert sum(cc["counts"].values()) == d_cc and cc["counts"]["dead"] == cc["latent_class"].count("dead")
    assert cc["dead_fraction"] == pytest.approx(cc["counts"]["dead"] / d_cc)
    ab = cc["ablate_finetuned_latents"]
    assert all(rec_delta < 0.4 for e in ab["entries"] for rec_delta in [cc["delta"][j] for j in e["latents"]])
    assert all(e["n"] <= ab["candidates"] for e in ab["entries"])
    ts = rec["transcoder_sites"]["transcoder@1"]
    d_tc = cfg.elicit.transcoder.expansion * cfg.organisms.model.d_model
    assert [e["n"] for e in ts["ablate_shortcut_latents"]["entries"]] == [n for n in cfg.elicit.counts if n <= d_tc // 2]
    for r in (ab, ts["ablate_shortcut_latents"]):
        assert r["chosen"] is None or r["null"]["n"] == cfg.elicit.null_draws
    # the headline is the best on the choice set among every site's, crosscoder's and transcoder's
    every = [(s, n, r) for s, x in rec["sites"].items() for n, r in x.items() if isinstance(r, dict) and "chosen" in r]
    every += [("crosscoder@blocks.1.hook_resid_post", "ablate_finetuned_latents", ab),
              ("transcoder@1", "ablate_shortcut_latents", ts["ablate_shortcut_latents"])]
    gaps = [(next(e for e in r["entries"] if e["n"] == r["chosen"])["metrics"]["choose"]["follow"]["gap_recovered"]["value"], s, n)
            for s, n, r in every if r["chosen"] is not None]
    if gaps:
        assert max(gaps)[0] == pytest.approx(next(g for g, s, n in gaps if (s, n) == (rec["headline"]["site"], rec["headline"]["intervention"])))
    # explanations in each model's features table
    f = json.loads((run / "features" / "base.json").read_text())
    assert len(f["explanations"]) == cfg.sae.train.expansion * cfg.organisms.model.d_model
    assert any(r["explanation"] for r in f["table"]["rows"])
    report = json.loads((run / "report.json").read_text())
    assert "feature_intervention_elicits" in {c["claim"] for c in report["claims"]}
    assert "## Elicitation ladder" in (run / "report.md").read_text()
