"""The feature browser of a pair run: a tiny random-weight Qwen2 pair run through the pair
pipeline, then `saelab browse` on it: the pages, the ReasonScore index with its top latents
tagged, the same latent in the other model, logit effects through each model's LM head and
the steering runs that clamped a latent."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from experiments.cli import main

CONFIG = Path(__file__).parent.parent / "experiments" / "configs" / "pair-tiny.yaml"


def make_pair_run(tmp: Path) -> Path:
    """`saelab run` of pair-tiny.yaml on a tiny Qwen2 pair saved under `tmp` (one thread): the run directory."""
    from experiments.pairs.tiny import save_tiny_pair

    pair = tmp / "pair"
    save_tiny_pair(pair, "qwen2")
    data = yaml.safe_load(CONFIG.read_text())
    data["threads"] = 1
    data["models"] = {"base": {"path": str(pair / "base")},
                      "variants": {"perturbed": {"path": str(pair / "perturbed")}}}
    config = tmp / "pair-tiny.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp / "run"
    assert main(["run", "--config", str(config), "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    return make_pair_run(tmp_path_factory.mktemp("pair-browse"))


def _index(site: Path, model: str) -> dict:
    text = (site / model / "index.html").read_text()
    return json.loads(re.search(r'<script id="latents" type="application/json">(.*?)</script>', text, re.S).group(1))


def test_browse_writes_a_pair_runs_site(pair_run, tmp_path, capsys):
    run, site = pair_run, tmp_path / "site"
    assert main(["browse", str(run), "--out", str(site)]) == 0
    assert "open " in capsys.readouterr().err
    d_sae = json.loads((run / "saes" / "base" / "cfg.json").read_text())["d_sae"]
    pages = list(site.rglob("*.html"))
    assert len(pages) == 1 + 2 * (1 + d_sae)  # site index; per model its index and a page per latent
    for p in pages:  # no network: no absolute URLs in src/href
        assert not re.search(r'(src|href)="(https?:)?//', p.read_text()), p
    assert json.loads((site / "browser.json").read_text())["models"] == ["base", "perturbed"]
    for model in ("base", "perturbed"):
        feats = json.loads((run / "features" / f"{model}.json").read_text())
        data = _index(site, model)
        assert [c["key"] for c in data["columns"]][-1] == "reason_score" and data["default_sort"] == "reason_score"
        assert [r["reason_score"] for r in data["rows"]] == pytest.approx(feats["reason_score"], abs=1e-6)
        assert {i for i, r in enumerate(data["rows"]) if "reasoning" in r["tags"]} == set(feats["top"])
    feats = json.loads((run / "features" / "base.json").read_text())
    steer = json.loads((run / "steering" / "perturbed.json").read_text())
    top, control = feats["top"][0], feats["random_control"][0]
    page = (site / "base" / "latents" / f"{top}.html").read_text()
    assert f"latent #{top}" in page and 'class="ctx"' in page
    compare = re.search(r'<table id="compare">(.*?)</table>', page, re.S).group(1)
    assert "perturbed" in compare and "mean on question" in compare and "mean on step" in compare
    assert re.search(r'<table id="logits-pos">.*?<code>', page, re.S)  # the base's LM head, decoded tokens
    table = re.search(r'<table id="steering">(.*?)</table>', page, re.S).group(1)
    want = next(e for e in steer["steered"] if e["latents"] == "reasoning")
    assert "clamp reasoning latents" in table and f"<td>{want['strength']}</td>" in table
    assert "clamp random latents" in (site / "base" / "latents" / f"{control}.html").read_text()
    # steering used the base SAE: a variant's pages list no steering, and say nothing of it
    assert all('id="steering"' not in p.read_text() for p in (site / "perturbed" / "latents").glob("*.html"))
    assert "Ablating the" in (site / "base" / "index.html").read_text()
    # one model only
    assert main(["browse", str(run), "--out", str(site), "--models", "perturbed", "--overwrite"]) == 0
    assert json.loads((site / "browser.json").read_text())["models"] == ["perturbed"]
    assert not (site / "base").exists()
    assert "base" in (site / "perturbed" / "latents" / "0.html").read_text()  # read on the base's cache too


def test_browse_a_pair_run_without_features_names_the_stage(pair_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(pair_run, copy, ignore=shutil.ignore_patterns("features", "steering"))
    assert main(["browse", str(copy), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "needs the 'features' stage" in err and f"`saelab features {copy}" in err, err
    assert not (tmp_path / "site").exists()
