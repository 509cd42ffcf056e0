"""The `sae` stage of the quick run, and `saelab train-sae` / `saelab eval-sae`."""

import json

import pytest
import torch
from sae_lens import SAE

from experiments.cli import main
from experiments.runconfig import load_run_config
from experiments.figures.sae import SAE as SAE_FIGURES
from experiments.stages.sae_data import RowSplit, cache_sequences
from sae.crosscoder import load_crosscoder
from sae.evaluate import evaluate_on_cache
from sae.load import load_sae_folder

HOOK = "blocks.1.hook_resid_post"
MODELS = ["base", "sft-noisy-trace", "sft-direct", "sft-answer-only", "sft-no-abstain", "dpo", "sft-cot",
          "sft-truncated-cot", "sft-filler", "sft-paraphrase", "sft-hollow-steps", "sft-verbosity", "sft-switch",
          "sft-format", "dpo-format", "sft-instruction"]  # the quick config's


def test_sae_stage_outputs_metrics_figures_and_report(quick_run):
    run, _ = quick_run
    cfg, _ = load_run_config("quick")
    ev = json.loads((run / "saes" / "eval.json").read_text())
    assert list(ev["saes"]) == MODELS and ev["hook"] == HOOK
    # paired: every model's SAE from the same initialisation; same config, same rows per step
    cfgs = [json.loads((run / "saes" / m / "train_config.json").read_text()) for m in MODELS]
    assert all(c == cfgs[0] for c in cfgs)
    base = load_sae_folder(run / "saes" / "base")
    assert base.cfg.metadata.hook_name == HOOK and base.cfg.d_sae == cfg.sae.train.expansion * 64
    # held-out metrics are on the held-out examples only, recomputable from the cache
    again = evaluate_on_cache(base, run / "activations" / "base", HOOK, where=RowSplit(cfg.sae.heldout_every, True))
    assert ev["saes"]["base"]["heldout"] == again
    with_heldout = ev["saes"]["base"]["heldout"]["n"]
    from activations.cache import open_cache

    with open_cache(run / "activations" / "base") as c:
        assert with_heldout == int((c.column("example") % cfg.sae.heldout_every == 0).sum())
    # transfer: the diagonal is each SAE on its own model's held-out activations
    for m in MODELS:
        assert ev["transfer"][m][m] == ev["saes"][m]["heldout"]
        sp = ev["saes"][m]["spliced"]
        assert sp["all"]["n"] > sp["step"]["n"] > 0 and sp["all"]["ce_clean"] <= sp["all"]["ce_ablation"]
    assert set(ev["frontier"]) == {p.name for p in cfg.sae.frontier} | {"topk-k8 (base SAE)"}
    # the crosscoder: counts add up to its width, and diff.json has every latent
    cc = load_crosscoder(run / "saes" / "crosscoder-sft-noisy-trace")
    assert cc.d_sae == 4 * 64 and cc.models == ["base", "sft-noisy-trace"]
    diff = json.loads((run / "saes" / "crosscoder-sft-noisy-trace" / "diff.json").read_text())
    norms = cc.decoder_norms().detach()
    for lat in diff["latents"]:  # r and Delta from the saved decoders; the class from Delta and the firing rate
        b, f = norms[lat["latent"]].tolist()
        delta = ((b - f) / max(b, f) + 1) / 2  # Minder et al.: 0 fine-tuned only, 1 base only
        assert lat["r"] == pytest.approx(f / (b + f), abs=1e-6) and lat["delta"] == pytest.approx(delta, abs=1e-6)
        want = ("dead" if lat["rate"] == 0 else "finetuned_only" if delta < 0.1 else "base_only" if delta > 0.9
                else "shared" if abs(delta - 0.5) < 0.1 else "other")
        assert lat["class"] == want
    assert set(diff["counts"]) == {"base_only", "shared", "finetuned_only", "other", "dead"}
    cross = ev["crosscoders"]["sft-noisy-trace"]
    assert cfg.sae.crosscoder.k / 1.5 <= cross["heldout"]["l0"] <= cfg.sae.crosscoder.k * 1.5  # calibrated threshold
    assert cross["heldout"]["n"] == with_heldout
    md = (run / "report.md").read_text()
    report = json.loads((run / "report.json").read_text())
    assert "## SAEs" in md and "| SAE \\ activations |" in md and "| base x sft-noisy-trace |" in md
    assert report["sae"]["transfer"]["base"]["dpo"]["explained_variance"] == ev["transfer"]["base"]["dpo"]["explained_variance"]
    for name in SAE_FIGURES:
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000 and f"figures/{name}.png" in md
    t = json.loads((run / "figures" / "sae_transfer.json").read_text())
    assert t["explained_variance"][1][0] == ev["transfer"]["sft-noisy-trace"]["base"]["explained_variance"]


def test_cache_sequences_rebuilds_the_token_ids(quick_run):
    run, _ = quick_run
    from activations.cache import open_cache

    ids, step = cache_sequences(run / "activations" / "base", 5)
    with open_cache(run / "activations" / "base") as c:
        seq, tok, role = c.column("seq"), c.column("token_ids"), c.column("role")
    assert len(ids) == 5
    for s in range(5):
        assert ids[s].tolist() == tok[seq == s].tolist() and step[s].tolist() == (role[seq == s] == 1).tolist()


def test_train_and_eval_sae_commands(quick_run, tmp_path, capsys):
    run, _ = quick_run
    base, ft = str(run / "activations" / "base"), str(run / "activations" / "sft-direct")
    assert main(["train-sae", "--cache", base, "--hook", HOOK, "--out", str(tmp_path / "s"), "--steps", "10",
                 "--batch_size", "256", "--buffer_rows", "1024", "--norm_batches", "2", "--expansion", "2",
                 "--k", "4", "--role", "step", "--checkpoints", "0"]) == 0
    sae = SAE.load_from_disk(str(tmp_path / "s"))
    assert sae.cfg.d_sae == 128 and sae.cfg.metadata.hook_name == HOOK
    out, err = capsys.readouterr()  # off a terminal: stdout is the metrics alone, progress lines on stderr
    assert json.loads(out) == json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert "Training SAE: done" in err and err.rstrip().endswith(f"saelab train-sae: wrote {tmp_path / 's'}")
    assert main(["eval-sae", "--cache", ft, "--sae", str(tmp_path / "s"), "--role", "answer", "--variant", "gold", "--model",
                 str(run / "models" / "sft-direct"), "--max_sequences", "8", "--out", str(tmp_path / "e.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "e.json").read_text())
    assert printed["reconstruction"] == evaluate_on_cache(sae, ft, HOOK, where={"role": 2, "variant": 0})
    assert printed["reconstruction"]["n"] < evaluate_on_cache(sae, ft, HOOK, where={"role": 2})["n"]
    assert printed["reconstruction"]["l0"] == 4.0 and printed["spliced"]["step"]["n"] > 0
    # a crosscoder on the pair
    assert main(["train-sae", "--cache", base, "--crosscoder_with", ft, "--hook", HOOK, "--out", str(tmp_path / "cc"),
                 "--steps", "5", "--batch_size", "256", "--buffer_rows", "1024", "--norm_batches", "2",
                 "--expansion", "2", "--k", "4"]) == 0
    cc = load_crosscoder(tmp_path / "cc")
    assert cc.d_sae == 128 and cc.metadata["hook_name"] == HOOK
    capsys.readouterr()
    assert main(["train-sae", "--cache", base, "--crosscoder_with", ft, "--hook", HOOK, "--out", str(tmp_path / "c2"),
                 "--architecture", "standard"]) == 2
    assert "--architecture do not apply to a crosscoder" in capsys.readouterr().err
    assert torch.isfinite(cc(torch.zeros(3, 2, 64))).all()


@pytest.mark.parametrize("args, msg", [
    (["--hook", "blocks.0.hook_resid_post"], "the SAE was trained on 'blocks.1.hook_resid_post', not 'blocks.0"),
    (["--hook", "blocks.7.hook_resid_post"], "hook 'blocks.7.hook_resid_post' is not in the cache"),
    (["--sae", "{tmp}/nothing"], "no SAE folder at"),
    (["--sae", "{run}/models/base"], "is not a SAELens SAE folder (missing cfg.json"),
    (["--sae", "{run}/saes/crosscoder-sft-noisy-trace"], "is a saelab crosscoder, not an SAE"),
    (["--sae", "{tmp}/wide", "--hook", HOOK], "the SAE reads d_in=16 but the activations have d_model=64"),
    (["--sae", "{tmp}/wide"], "the SAE does not say which hook it reads; give --hook"),
    (["--release", "no-such-release", "--sae_id", "x", "--sae", None], "unknown SAELens release 'no-such-release'"),
    (["--variant", "noisy"], "--variant must be one of ['gold', 'paraphrase', 'corrupt'], got 'noisy'"),
])
def test_eval_sae_bad_inputs_are_one_line_errors(quick_run, tmp_path, capsys, args, msg):
    from sae_lens import StandardSAE, StandardSAEConfig

    run, _ = quick_run
    StandardSAE(StandardSAEConfig(d_in=16, d_sae=32)).save_model(str(tmp_path / "wide"))
    argv = ["eval-sae", "--cache", str(run / "activations" / "base"), "--sae", str(run / "saes" / "base")]
    for flag, value in zip(args[::2], args[1::2]):
        if flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
        if value is not None:
            argv += [flag, value.format(tmp=tmp_path, run=run)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err and err.startswith("saelab eval-sae: error: ")
