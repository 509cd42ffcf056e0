"""The feature browser's pages of the elicit stage's dictionaries: a crosscoder read on the
paired rows of two caches equals its code computed by hand, a limited read says how many
rows it saw, and the site holds a page per latent of every dictionary with its explanation,
latent class and tags."""

from __future__ import annotations

import json
import re

import numpy as np
import torch

from experiments.cli import main

SITE = "blocks.1.hook_resid_post"


def _rows(index: str) -> dict:
    return json.loads(re.search(r'<script id="latents" type="application/json">(.*?)</script>', index, re.S).group(1))


def test_crosscoder_latent_data_on_paired_rows_equals_its_code(quick_run):
    from activations.cache import open_cache
    from features.browser import BrowserConfig, CrosscoderCode, PairedRows, latent_data
    from sae.crosscoder import load_crosscoder

    run, _ = quick_run
    cc = load_crosscoder(run / "elicit" / "crosscoders" / "sft-noisy-trace" / SITE)
    base, var = run / "elicit" / "activations" / "base", run / "elicit" / "activations" / "sft-noisy-trace"
    cfg = BrowserConfig(top=3, quantiles=2, per_quantile=1, bins=5, before=2, after=1, batch_size=113)
    with PairedRows(base, var) as rows:
        d = latent_data(CrosscoderCode(cc, 1), rows, SITE, cfg, max_rows=1000)
    with open_cache(base) as a, open_cache(var) as b:
        n_total = len(a.column("seq"))
        x = torch.stack([a.activations(SITE)[:1000], b.activations(SITE)[:1000]], 1)  # (1000, 2, d_in)
    with torch.no_grad():
        f = cc.encode(x.to(cc.W_enc.dtype)).float()
    assert d["n_rows"] == 1000 and d["n_total"] == n_total > 1000
    assert np.allclose(d["density"], (f > 0).float().mean(0).numpy())
    assert np.allclose(d["max"], f.amax(0).numpy(), atol=1e-5)
    j = int((f > 0).sum(0).argmax())
    assert np.allclose([t["act"] for t in d["top"][j]], f[:, j].topk(3).values.numpy(), atol=1e-4)
    assert all(t["row"] < 1000 for t in d["top"][j])
    # the decoder it shows logit effects of is the asked model's
    assert torch.equal(CrosscoderCode(cc, 0).W_dec, cc.W_dec[:, 0])


def test_rows_note_says_a_limited_read():
    from experiments.browse_elicit import rows_note
    from features.browser import BrowserConfig

    cfg = BrowserConfig(elicit_rows=500)
    assert rows_note({"n_rows": 500, "n_total": 2000}, "c", cfg).startswith(
        "Statistics from the first 500 of the 2000 rows of c (--elicit_rows 500")
    assert rows_note({"n_rows": 2000, "n_total": 2000}, "c", cfg) == "Statistics from all 2000 rows of c."


def test_chosen_latents_tags_each_intervention_and_the_headline():
    from experiments.browse_elicit import chosen_latents

    record = {"ablate_shortcut_latents": {"chosen": 2, "entries": [{"n": 1, "latents": [4]},
                                                                   {"n": 2, "latents": [4, 7]}]},
              "clamp_value_latents": {"chosen": None, "entries": [{"n": 1, "latents": [9]}]},
              "explanations": [None]}
    got = chosen_latents(record, {"intervention": "ablate_shortcut_latents"})  # chosen: the size n
    assert got == {"shortcut": [4, 7], "headline": [4, 7]}  # an intervention with no chosen size tags nothing


def test_browse_writes_the_elicit_dictionaries_pages(quick_run, tmp_path, capsys):
    run, _ = quick_run
    out = tmp_path / "site"
    assert main(["browse", str(run), "--out", str(out), "--models", "base", "sft-noisy-trace",
                 "--elicit_rows", "3000"]) == 0
    meta = json.loads((out / "browser.json").read_text())
    rec = json.loads((run / "elicit" / "sft-noisy-trace.json").read_text())
    cc_folder = f"elicit-crosscoder-sft-noisy-trace-{SITE}"
    assert cc_folder in meta["folders"] and "elicit-transcoder-1-sft-noisy-trace" in meta["folders"]
    assert f"elicit-sae-base-{SITE}" in meta["folders"]
    for folder in meta["folders"]:  # a page per latent of every dictionary
        n = len(_rows((out / folder / "index.html").read_text())["rows"])
        assert n > 0 and len(list((out / folder / "latents").glob("*.html"))) == n, folder
    # the crosscoder's index: its latent classes and explanations as columns, equal to the record's
    data = _rows((out / cc_folder / "index.html").read_text())
    cc = rec["crosscoders"][SITE]
    keys = [c["key"] for c in data["columns"]]
    assert {"latent_class", "delta"} <= set(keys)
    assert [r["latent_class"] for r in data["rows"]] == cc["latent_class"]
    i = next(k for k, e in enumerate(cc["explanations"]) if e is not None)
    page = (out / cc_folder / "latents" / f"{i}.html").read_text()
    assert cc["explanations"][i]["text"] in page and "base decoder" in page
    assert "Statistics from the first 3000 of the" in page and "(paired)" in page
    for e in data["rows"]:  # no tag names a latent outside its dictionary
        assert set(e["tags"]) <= {"shortcut", "value", "finetuned", "headline", "dense", "dead",
                                  "reasoning"} | set(rec), e["tags"]
    # the site index lists every dictionary; the base's elicit SAE has no explanations written
    index = (out / "index.html").read_text()
    assert "Elicitation dictionaries" in index and "not computed" in index and "3000" in index
    # --noelicit leaves them out
    assert main(["browse", str(run), "--out", str(out), "--models", "base", "--noelicit", "--overwrite"]) == 0
    assert json.loads((out / "browser.json").read_text())["folders"] == [] and not (out / cc_folder).exists()
