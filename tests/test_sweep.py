"""`saelab sweep` and `saelab aggregate`: the mean and between-seed t interval against hand-computed
values, a metric missing in one seed, the refusals (different configs, a folder that is not a
finished run, a foreign --out), the sweep's seed loop through `saelab run`'s code path, and
the machine recorded in a run's manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from experiments.aggregate import HEADLINE, aggregate_report
from experiments.aggregate.figure import draw
from experiments.aggregate.runs import config_differences
from experiments.cli import main
from experiments.config import to_dict
from experiments.engine.manifest import machine, torch_blas
from experiments.studies import load_any_config
from tests.test_pairs import pair_config, tiny_pair

T975_2 = 4.302652729911275  # t quantile 0.975 at 2 degrees of freedom (scipy.stats.t.ppf(0.975, 2))


def summary(v: float | None, n: int = 50) -> dict:
    return {"value": v, "n": n, "ci95": None if v is None else [v - 0.1, v + 0.1]}


def organisms_report(seed: int, x: float) -> dict:
    """A hand-made report.json of the organisms study, every headline number derived from `x`."""
    def model(x: float) -> dict:
        return {"accuracy": {"1": summary(x), "2": summary(x / 2)}, "corruption_follow_rate": summary(x),
                "early_answering_aoc": summary(x), "info_gain_per_step": summary(x) | {"self": summary(2 * x)},
                "info_gain_ppl": summary(3 * x),
                "abstention": {"recall": summary(x), "precision": summary(1.0)},
                "filler_accuracy": summary(x), "paraphrase_accuracy": summary(x)}

    gap = lambda g: {"gap_recovered": {"heldout": {"follow": {"value": g, "ci95": None, "gap": 0.3}}}}  # noqa: E731
    return {"seed": seed, "reference": "base", "behavior": {"base": model(x), "sft": model(x / 10)},
            "elicitation": {"variants": {"sft": {"reference": {}, "best": {"mean_difference": gap(x),
                                                                           "patching_oracle": gap(1.0)}}}}}


def make_run(root: Path, seed: int, report: dict | None, **changes) -> Path:
    """A run directory of the quick config at `seed` (its config.yaml as the engine writes it,
    with `changes` to top-level sections merged in) and `report` as its report.json."""
    cfg, _, _ = load_any_config("quick", seed)
    data = to_dict(cfg)
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if report is not None:
        (root / "report.json").write_text(json.dumps(report))
    return root


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---- aggregate_report ------------------------------------------------------------------------
def test_mean_and_t_interval_by_hand():
    agg = aggregate_report([organisms_report(s, x) for s, x in ((2, 3.0), (0, 1.0), (1, 2.0))])
    assert agg["study"] == "organisms" and agg["seeds"] == ["0", "1", "2"]
    m = agg["metrics"]["corruption_follow_rate:base"]
    half = T975_2 * 1.0 / math.sqrt(3)  # sd of 1, 2, 3 is 1
    assert half == pytest.approx(2.484, abs=1e-3)
    assert m["value"] == pytest.approx(2.0) and m["n"] == 3
    assert m["ci95"] == pytest.approx([2.0 - half, 2.0 + half])
    assert m["seeds"] == {"0": 1.0, "1": 2.0, "2": 3.0} and m["missing"] == []
    assert agg["metrics"]["info_gain_per_step_self:sft"]["value"] == pytest.approx(0.4)
    assert agg["metrics"]["accuracy:base:k=2"]["seeds"] == {"0": 0.5, "1": 1.0, "2": 1.5}
    assert agg["metrics"]["gap_recovered_follow:sft:patching_oracle"]["ci95"] == pytest.approx([1.0, 1.0])


def test_every_headline_of_the_organisms_study_is_there():
    agg = aggregate_report([organisms_report(0, 0.5), organisms_report(1, 0.7)])
    assert {m["metric"] for m in agg["metrics"].values()} == {h.name for h in HEADLINE["organisms"]}
    assert set(agg["metrics"]) >= {"accuracy:sft:k=1", "abstention_recall:base", "filler_accuracy:sft",
                                   "paraphrase_accuracy:base", "early_answering_aoc:sft",
                                   "gap_recovered_follow:sft:mean_difference", "info_gain_per_step:base"}


def test_a_metric_missing_in_one_seed_keeps_the_seeds_that_have_it():
    reports = [organisms_report(s, x) for s, x in ((0, 1.0), (1, 2.0), (2, 4.0))]
    del reports[1]["behavior"]["base"]["filler_accuracy"]  # absent in seed 1
    reports[2]["elicitation"]["variants"]["sft"]["best"]["mean_difference"] = {  # no gap in seed 2
        "gap_recovered": {"heldout": {"follow": {"value": None, "ci95": None, "no_gap": True}}}}
    agg = aggregate_report(reports)
    filler = agg["metrics"]["filler_accuracy:base"]
    assert filler["n"] == 2 and filler["seeds"] == {"0": 1.0, "2": 4.0} and filler["missing"] == ["1"]
    assert filler["value"] == pytest.approx(2.5)
    gap = agg["metrics"]["gap_recovered_follow:sft:mean_difference"]
    assert gap["n"] == 2 and gap["missing"] == ["2"]
    only = aggregate_report(reports[:1] + reports[1:2])["metrics"]["filler_accuracy:base"]
    assert only["n"] == 1 and only["ci95"] is None and only["value"] == 1.0


def test_pairs_reports_use_the_pairs_headline():
    report = json.loads((Path(__file__).parent / "golden" / "pair-tiny" / "report.json").read_text())
    agg = aggregate_report([report, report | {"seed": 1}])
    assert agg["study"] == "pairs"
    assert agg["metrics"]["mistake_changes:base"]["value"] == pytest.approx(0.2)
    assert agg["metrics"]["paraphrase_same:base"]["n"] == 0  # None in every seed: kept, n = 0
    assert "gap_recovered_mistake:perturbed:reasoning x4" in agg["metrics"]


def test_two_reports_of_one_seed_are_refused():
    with pytest.raises(ValueError, match="seed 0 appears in 2 of the reports"):
        aggregate_report([organisms_report(0, 1.0), organisms_report(0, 2.0)])


def test_config_differences_name_the_sections_and_keys():
    a = {"seed": 0, "device": "cpu", "sae": {"train": {"k": 8, "lr": 0.1}}, "task": {"n": 1}}
    b = {"seed": 1, "device": "cuda", "sae": {"train": {"k": 16, "lr": 0.1}}, "task": {"n": 1}}
    assert config_differences(a, b) == {"sae": ["sae.train.k"]}


# ---- saelab aggregate ------------------------------------------------------------------------
def test_aggregate_writes_json_markdown_and_figure(tmp_path, capsys):
    runs = [make_run(tmp_path / f"r{s}", s, organisms_report(s, x)) for s, x in ((0, 1.0), (1, 2.0), (2, 3.0))]
    out = tmp_path / "agg"
    assert main(["aggregate", *map(str, runs), "--out", str(out)]) == 0
    data = json.loads((out / "aggregate.json").read_text())
    expected = aggregate_report([json.loads((r / "report.json").read_text()) for r in runs])
    assert {k: data[k] for k in expected} == expected  # aggregate_report's structure, as written
    assert data["runs"] == {str(s): str(r) for s, r in enumerate(runs)}
    md = (out / "aggregate.md").read_text().splitlines()
    assert md[0] == f"`saelab aggregate {' '.join(map(str, runs))} --out {out}`"
    assert "| metric | mean (n) | 95% t interval | per-seed values |" in md
    assert "| `corruption_follow_rate` base | 2.000 (3) | [-0.484, 4.484] | 0: 1.000; 1: 2.000; 2: 3.000 |" in md
    # the summary: a row per model, mean [t interval] (seeds); and the claims checked on every seed
    row = next(line for line in md if line.startswith("| `base` |"))
    assert row.startswith("| `base` | 1.00 [-0.24, 2.24] (0.50 / 1.00 / 1.50) | 2.00 [-0.48, 4.48] (1.00 / 2.00 / 3.00) |")
    assert "## Claims over the seeds" in md and [c["claim"] for c in data["claims"]][0] == "stops_following"
    assert (out / "aggregate.png").stat().st_size > 0
    fig = draw(json.loads((out / "aggregate-figure.json").read_text()))  # the figure redraws from its data
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(HEADLINE["organisms"])

    # an aggregate is replaced only with --overwrite
    capsys.readouterr()
    assert main(["aggregate", *map(str, runs), "--out", str(out)]) == 2
    assert "already holds a seed aggregate; pass --overwrite" in one_error_line(capsys)
    assert main(["aggregate", *map(str, runs), "--out", str(out), "--overwrite"]) == 0


def test_aggregate_refuses_runs_of_different_configs(tmp_path, capsys):
    a = make_run(tmp_path / "a", 0, organisms_report(0, 1.0))
    b = make_run(tmp_path / "b", 1, organisms_report(1, 2.0), behavior={"batch_size": 7}, threads=3)
    assert main(["aggregate", str(a), str(b), "--out", str(tmp_path / "agg")]) == 2
    line = one_error_line(capsys)
    assert "were run with different configs (they differ in: behavior (behavior.batch_size))" in line
    assert "threads" not in line and not (tmp_path / "agg").exists()  # machine settings may differ


def test_aggregate_refuses_a_folder_that_is_not_a_finished_run(tmp_path, capsys):
    good = make_run(tmp_path / "good", 0, organisms_report(0, 1.0))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["aggregate", str(good), str(empty), "--out", str(tmp_path / "agg")]) == 2
    line = one_error_line(capsys)
    assert f"{empty} is not a run directory (no config.yaml)" in line and "saelab run --config" in line

    unfinished = make_run(tmp_path / "unfinished", 1, None)
    assert main(["aggregate", str(good), str(unfinished), "--out", str(tmp_path / "agg")]) == 2
    line = one_error_line(capsys)
    assert "(no report.json)" in line and f"saelab run --config {unfinished / 'config.yaml'} --out {unfinished} " \
                                          "--until report" in line


def test_aggregate_refuses_a_foreign_out_folder_even_with_overwrite(tmp_path, capsys):
    runs = [make_run(tmp_path / f"r{s}", s, organisms_report(s, 1.0 + s)) for s in (0, 1)]
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["aggregate", *map(str, runs), "--out", str(out), "--overwrite"]) == 2
    assert "does not hold a seed aggregate written by saelab" in one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# ---- saelab sweep ----------------------------------------------------------------------------
def test_sweep_runs_each_seed_through_saelab_run_then_aggregates(tmp_path, monkeypatch, capsys):
    import experiments.commands.run as run_command

    calls = []

    def fake_run(args):  # what `saelab run` leaves: a config.yaml of the seed and a report
        calls.append(args)
        make_run(Path(args.out), args.seed, organisms_report(args.seed, float(args.seed)))

    monkeypatch.setattr(run_command, "cmd_run", fake_run)
    out = tmp_path / "sweep"
    argv = ["sweep", "--config", "quick", "--seeds", "0", "1", "2", "--out", str(out), "--force", "report"]
    assert main(argv) == 0
    assert [(a.config, a.out, a.seed, a.force, a.until, a.overwrite) for a in calls] == [
        ("quick", str(out / f"seed-{s}"), s, ["report"], None, False) for s in (0, 1, 2)]
    story = capsys.readouterr().out
    assert "saelab sweep: seed 1 (2/3) started" in story and "saelab sweep: seed 2 (3/3) done" in story
    data = json.loads((out / "aggregate.json").read_text())
    assert data["seeds"] == ["0", "1", "2"] and data["metrics"]["corruption_follow_rate:base"]["value"] == 1.0
    assert data["command"] == f"saelab sweep --config quick --seeds 0 1 2 --out {out} --force report"
    assert (out / "aggregate.md").read_text().startswith(f"`{data['command']}`")

    # --until before the last stage: the seeds run, no aggregate is written
    calls.clear()
    assert main(["sweep", "--config", "quick", "--seeds", "5", "--out", str(tmp_path / "early"), "--until", "cache",
                 "--overwrite"]) == 0
    assert [(a.seed, a.until, a.overwrite) for a in calls] == [(5, "cache", True)]
    assert sorted(p.name for p in (tmp_path / "early").iterdir()) == ["seed-5"]


def test_sweep_refuses_a_foreign_folder_and_repeated_seeds(tmp_path, monkeypatch, capsys):
    import experiments.commands.run as run_command

    monkeypatch.setattr(run_command, "cmd_run", lambda args: pytest.fail("no seed may run"))
    out = tmp_path / "taken"
    out.mkdir()
    (out / "data.csv").write_text("1,2")
    assert main(["sweep", "--config", "quick", "--seeds", "0", "1", "--out", str(out)]) == 2
    assert "does not hold a sweep" in one_error_line(capsys)
    assert main(["sweep", "--config", "quick", "--seeds", "0", "0", "--out", str(tmp_path / "new")]) == 2
    assert "--seeds names seed 0 twice" in one_error_line(capsys)


def test_a_real_sweep_makes_what_saelab_run_makes(tmp_path):
    """Two seeds of the tiny pair up to the models stage (seconds): each seed folder is a run
    directory of its seed, and its manifest records the machine next to the versions."""
    cfg = pair_config(tmp_path, tiny_pair(tmp_path / "pair"))
    out = tmp_path / "sweep"
    assert main(["sweep", "--config", str(cfg), "--seeds", "3", "4", "--out", str(out), "--until", "models"]) == 0
    alone = tmp_path / "alone"
    assert main(["run", "--config", str(cfg), "--seed", "4", "--out", str(alone), "--until", "models"]) == 0
    for s in (3, 4):
        run = out / f"seed-{s}"
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == s
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["seed"] == s and list(manifest["stages"]) == ["finetune", "models"]
        assert set(manifest["machine"]) == set(machine()) and "versions" in manifest
    assert (out / "seed-4" / "config.yaml").read_text() == (alone / "config.yaml").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["seed-3", "seed-4"]  # --until: no aggregate


# ---- the machine in the manifest -------------------------------------------------------------
def test_machine_keys_and_types():
    import torch

    m = machine()
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert isinstance(m["cpu_count"], int) and 1 <= m["cpus_usable"] <= m["cpu_count"]
    assert m["torch_threads"] == torch.get_num_threads()
    assert m["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(m["torch_blas"]) == {"blas", "lapack", "mkl", "openmp"}
    assert set(m["numpy_blas"]) == {"blas", "lapack"}
    assert all(v is None or isinstance(v, str) for v in [*m["torch_blas"].values(), *m["numpy_blas"].values()])
    assert isinstance(m["gpus"], list)
    if torch.cuda.is_available():
        assert m["cuda"] == torch.version.cuda and len(m["gpus"]) == torch.cuda.device_count()
    else:
        assert m["cuda"] is None and m["gpus"] == []
    json.dumps(m)  # it goes into manifest.json


def test_torch_blas_is_read_from_the_build_settings():
    show = ("PyTorch built with:\n  - GCC 13.3\n  - Intel(R) oneAPI Math Kernel Library Version 2024.2\n"
            "  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n  - LAPACK is enabled (usually provided by MKL)\n"
            "  - Build settings: BLAS_INFO=open, BUILD_TYPE=Release, LAPACK_INFO=open, TORCH_VERSION=2.13.0, \n")
    assert torch_blas(show) == {"blas": "open", "lapack": "open", "mkl": "Intel(R) oneAPI Math Kernel Library "
                                "Version 2024.2", "openmp": "OpenMP 201511 (a.k.a. OpenMP 4.5)"}
    assert torch_blas("PyTorch built with:\n") == {"blas": None, "lapack": None, "mkl": None, "openmp": None}
