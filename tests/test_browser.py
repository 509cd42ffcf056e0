"""The feature browser's data (streamed passes equal a brute-force computation), the static
site it writes, `saelab figures` (redrawn figures have the same pixels), and the messages for
a run directory that lacks a stage."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from experiments.cli import main

HOOK = "blocks.1.hook_resid_post"


def test_latent_data_equals_brute_force(quick_run):
    from activations.cache import open_cache
    from features.browser import BrowserConfig, latent_data
    from sae.load import load_sae_folder

    run, _ = quick_run
    sae = load_sae_folder(run / "saes" / "base")
    cfg = BrowserConfig(top=5, quantiles=3, per_quantile=2, bins=7, before=3, after=1, batch_size=97)  # many merges
    d = latent_data(sae, run / "activations" / "base", HOOK, cfg)
    with open_cache(run / "activations" / "base") as c:
        with torch.no_grad():
            f = sae.encode(c.activations(HOOK)).float()
        seq, role = c.column("seq"), c.column("role")
    n = len(f)
    assert d["n_rows"] == n
    assert np.allclose(d["density"], (f > 0).float().mean(0).numpy())
    assert np.allclose(d["max"], f.amax(0).numpy())
    active = (f > 0).sum(0)
    assert np.allclose(d["mean_active"], (f.sum(0) / active.clamp_min(1)).numpy(), rtol=1e-5)
    assert [sum(h) for h in d["hist"]] == active.tolist()
    j = int(active.argmax())  # a busy latent: its histogram by hand
    frac = f[:, j][f[:, j] > 0] / f[:, j].max()
    assert d["hist"][j] == np.bincount((frac * 7).long().clamp(max=6).numpy(), minlength=7).tolist()
    # top rows: the largest activations, in order (identical token prefixes tie: compare values,
    # and that each listed row has the activation listed)
    want = f[:, j].topk(5)
    assert np.allclose([t["act"] for t in d["top"][j]], want.values.numpy(), atol=1e-4)
    assert np.allclose([float(f[t["row"], j]) for t in d["top"][j]], want.values.numpy(), atol=1e-4)
    assert len({t["row"] for t in d["top"][j]}) == 5
    # quantile samples lie in their interval; at most per_quantile per interval
    for s in d["sampled"][j]:
        x = float(f[s["row"], j]) / float(f[:, j].max())
        assert s["interval"] / 3 - 1e-6 <= x <= (s["interval"] + 1) / 3 + 1e-6
    assert max(np.bincount([s["interval"] for s in d["sampled"][j]])) <= 2
    # role means
    roles = d["groups"]["role"]
    for k, v in enumerate(roles["values"]):
        assert np.allclose(roles["mean"][k][j], float(f[torch.from_numpy(role == v), j].mean()), rtol=1e-5)
    # the same means (and the density) from the single-label pass used for other models' caches
    from features.latent_stats import group_means

    g = group_means(sae, run / "activations" / "base", HOOK, "role", batch_size=300)
    assert g["values"] == roles["values"] and np.allclose(g["mean"], roles["mean"], rtol=1e-5)
    assert np.allclose(g["density"], d["density"])
    # contexts: inside the row's sequence, the latent's activations at every shown token
    row = d["top"][j][0]["row"]
    ctx = d["contexts"][row]
    a, b = ctx["rows"]
    assert (seq[a:b] == seq[row]).all() and a <= row < b and b - a <= 3 + 1 + 1
    assert np.allclose(ctx["acts"][j], f[a:b, j].numpy(), atol=1e-4) and ctx["at"] == row - a


def test_browse_writes_a_static_site(quick_run, tmp_path, capsys):
    run, _ = quick_run
    out = tmp_path / "site"
    assert main(["browse", str(run), "--out", str(out), "--models", "base", "sft-noisy-trace",
                 "--noelicit"]) == 0
    assert "open " in capsys.readouterr().err
    pages = list(out.rglob("*.html"))
    d_sae = json.loads((run / "saes" / "base" / "cfg.json").read_text())["d_sae"]
    assert len(pages) == 1 + 2 * (1 + d_sae)  # site index; per model its index and a page per latent
    for p in pages:  # no network: no absolute URLs in src/href, and no page of many MB
        text = p.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), p
        assert p.stat().st_size < 300_000, p
    index = (out / "base" / "index.html").read_text()
    data = json.loads(re.search(r'<script id="latents" type="application/json">(.*?)</script>', index, re.S)
                      .group(1))
    keys = [c["key"] for c in data["columns"]]
    assert len(data["rows"]) == d_sae and {"reason_score", "value_auroc", "shift_sft-noisy-trace"} <= set(keys)
    feats = json.loads((run / "features" / "base.json").read_text())
    assert [r["reason_score"] for r in data["rows"]] == pytest.approx(feats["reason_score"]["all"], abs=1e-6)
    for i in feats["table"]["chosen"]["reasoning"]:
        assert "reasoning" in data["rows"][i]["tags"]
    top = feats["reason_score"]["top"][0]["latent"]
    page = (out / "base" / "latents" / f"{top}.html").read_text()
    assert f"latent #{top}" in page and 'class="ctx"' in page and "sft-noisy-trace" in page
    assert (out / "browser.json").exists()
    # a folder that is not a browser is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert main(["browse", str(run), "--out", str(other)]) == 2
    assert "does not hold a feature browser" in capsys.readouterr().err and (other / "notes.txt").exists()
    # a previous browser is replaced only with --overwrite, and then holds what was asked
    assert main(["browse", str(run), "--out", str(out), "--models", "base"]) == 2
    assert "already holds a feature browser; pass --overwrite" in capsys.readouterr().err
    assert main(["browse", str(run), "--out", str(out), "--models", "base", "--overwrite"]) == 0
    assert json.loads((out / "browser.json").read_text())["models"] == ["base"]
    assert not (out / "sft-noisy-trace").exists()


def test_figures_redraw_from_saved_data_with_the_same_pixels(quick_run, tmp_path, capsys):
    run, _ = quick_run
    names = sorted(p.stem for p in (run / "figures").glob("*.json"))
    assert {"accuracy_by_k", "sae_transfer", "steering", "reason_latents"} <= set(names)
    assert main(["figures", str(run), "--check"]) == 0
    assert f"checked {len(names)} figures" in capsys.readouterr().err
    # a copy whose data changed: the redrawn image differs, --check says so and exits 1
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("activations", "models", "saes"))
    data = json.loads((copy / "figures" / "sae_transfer.json").read_text())
    data["explained_variance"][0][0] = -0.5
    (copy / "figures" / "sae_transfer.json").write_text(json.dumps(data))
    assert main(["figures", str(copy), "--check"]) == 1
    assert "1 differ: ['sae_transfer']" in capsys.readouterr().err
    assert main(["figures", str(copy)]) == 0  # redraws; now they agree
    assert main(["figures", str(copy), "--check"]) == 0


@pytest.mark.parametrize("stage, command", [("cache", "saelab run --config"), ("features", "saelab features")])
def test_a_missing_stage_is_named(quick_run, tmp_path, capsys, stage, command):
    run, _ = quick_run
    copy = tmp_path / "run"
    skip = {"cache": ["activations"], "features": ["features"]}[stage]
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(*skip, "models"))
    assert main(["browse", str(copy), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert f"needs the '{stage}' stage" in err and f"`{command} {copy}" in err, err
    assert not (tmp_path / "site").exists()
