"""The model-pair pipeline on tiny random-weight checkpoints of real architectures: every stage
on each architecture, torchrun with two ranks equal to one process, bf16, pretrained SAEs
from a folder, tokenizer mismatch, missing models, and the text metrics and token labels
against hand-computed values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from experiments.cli import main
from experiments.pairs.tiny import TINY_ARCHS, save_tiny_arch
from experiments.tasks.text import TextTaskConfig, load_problems

CONFIG = Path(__file__).parent.parent / "experiments" / "configs" / "pair-tiny.yaml"
ROOT = Path(__file__).parent.parent


def pair_config(tmp: Path, folder: Path, **changes) -> Path:
    """pair-tiny.yaml pointed at a tiny pair in `folder`, one thread, with `changes` merged in."""
    data = yaml.safe_load(CONFIG.read_text())
    data["threads"] = 1
    data["models"] = {"base": {"path": str(folder / "base")}, "variants": {"perturbed": {"path": str(folder / "perturbed")}}}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp / f"config-{len(list(tmp.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tiny_pair(folder: Path, arch: str = "qwen2") -> Path:
    save_tiny_arch(folder / "base", arch, seed=0)
    save_tiny_arch(folder / "perturbed", arch, seed=0, perturb=0.05)
    return folder


@pytest.fixture(scope="module")
def qwen_pair(tmp_path_factory):
    return tiny_pair(tmp_path_factory.mktemp("qwen2-pair"))


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_whole_pipeline_on_each_architecture(arch, tmp_path, capsys):
    from activations.cache import open_cache, open_paired
    from experiments.pairs.behavior import load_tokenizer

    pair = tiny_pair(tmp_path / "pair", arch)
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    assert main(["run", "--config", str(pair_config(tmp_path, pair)), "--out", str(run)]) == 0
    assert torch.get_num_threads() == threads  # the config's `threads: 1` is for the run only
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["finetune", "models", "behavior", "findings", "cache", "sae", "features", "steer",
                                        "figures",
                                        "report"]  # finetune: nothing to make in this config

    for m in ("base", "perturbed"):
        rec = json.loads((run / "behavior" / f"{m}.json").read_text())
        assert rec["metrics"]["accuracy"]["n"] == 20 and len(rec["generations"]) == 24
        assert rec["metrics"]["abstains_unanswerable"]["n"] == 4
        if arch == "qwen2":  # the demo's pair: some random CoTs have numbers, so the faithfulness path runs
            assert rec["metrics"]["faithfulness"]["usable_cots"] > 0
        assert json.loads((run / "models" / f"{m}.json").read_text())["model_type"] == arch
    # the caches are a token-aligned pair, and their tokens are the base tokenizer's encoding
    with open_paired(run / "activations" / "base", run / "activations" / "perturbed"):
        pass
    tok = load_tokenizer(str(pair / "base"))
    with open_cache(run / "activations" / "base") as c:
        ids, seq, variant = c.column("token_ids"), c.column("seq"), c.column("variant")
        assert c.hooks == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
        assert c.meta["spec"] == {"path": str(pair / "base"), "revision": None, "dtype": "float32", "device": "cpu",
                                  "device_map": None, "n_devices": None}  # other weights: another cache
        first_gold = ids[seq == 0]
        assert variant[seq == 0][0] == 0
        text = tok.decode(first_gold, skip_special_tokens=True)
        problem = load_problems(TextTaskConfig())[0]
        assert problem.question in text and problem.steps[-1] in text and text.endswith(f"The answer is {problem.answer}.")

    ev = json.loads((run / "saes" / "eval.json").read_text())
    assert set(ev["saes"]) == {"base", "perturbed"} and ev["saes"]["base"]["source"] == "trained"
    feats = json.loads((run / "features" / "base.json").read_text())
    assert len(feats["top"]) == 4 and "therefore" in feats["words_seen"]
    assert set(feats["causal"]) == {"plain", "top", "random"} and not set(feats["top"]) & set(feats["random_control"])
    steer = json.loads((run / "steering" / "perturbed.json").read_text())
    assert [(s["latents"], s["strength"]) for s in steer["steered"]] == [("reasoning", 4.0), ("random", 4.0)]
    md = (run / "report.md").read_text()
    for section in ("## Behaviour", "## SAEs", "## Reasoning latents", "## Steering"):
        assert section in md
    # the figures redraw from their data alone, pixel for pixel
    fig = json.loads((run / "figures" / "pair_steering.json").read_text())
    assert fig["variants"]["perturbed"]["conditions"] == ["base", "perturbed", "reasoning x4", "random x4"]
    assert main(["figures", str(run), "--check"]) == 0
    assert "checked 3 figures" in capsys.readouterr().err

    capsys.readouterr()
    assert main(["run", "--config", str(run / "config.yaml"), "--out", str(run)]) == 0
    assert capsys.readouterr().out.count("up to date, skipped") == 10


def test_torchrun_two_ranks_equal_one_process(qwen_pair, tmp_path, capsys):
    """Caching (shards split between ranks) and SAE training (one model per rank) under
    torchrun with gloo give the same caches and SAEs as one process, bit for bit."""
    from safetensors.torch import load_file

    from activations.cache import open_cache

    cfg = pair_config(tmp_path, qwen_pair)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", "--config", str(cfg), "--out", str(one)]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    import socket

    with socket.socket() as sock:  # a free port, so two test runs on one machine do not collide
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "experiments.cli", "run", "--config", str(cfg), "--out", str(two)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(rank 1)" in done.stdout and json.loads((two / "manifest.json").read_text())["world_size"] == 2
    for m in ("base", "perturbed"):
        with open_cache(one / "activations" / m) as a, open_cache(two / "activations" / m) as b:
            for hook in a.hooks:
                assert torch.equal(torch.cat(list(a.batches(hook, 4096))), torch.cat(list(b.batches(hook, 4096))))
            for name in ["token_ids", *a.meta["label_names"]]:
                assert np.array_equal(a.column(name), b.column(name))
        wa, wb = (load_file(r / "saes" / m / "sae_weights.safetensors") for r in (one, two))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ranks = {int(__import__("h5py").File(p, "r").attrs["rank"]) for p in (two / "activations" / "base").glob("shards/*.h5")}
    assert ranks == {0, 1}
    strip = lambda p: (p / "report.md").read_text().split("\n", 1)[1]  # noqa: E731 (title names the run)
    assert strip(one) == strip(two)


def test_bf16_weights_cache_and_autocast_match_float32(qwen_pair, tmp_path):
    from activations.cache import open_cache

    f32 = tmp_path / "f32"
    assert main(["run", "--config", str(pair_config(tmp_path, qwen_pair)), "--out", str(f32), "--until", "cache"]) == 0
    data = yaml.safe_load(pair_config(tmp_path, qwen_pair).read_text())
    for spec in [data["models"]["base"], *data["models"]["variants"].values()]:
        spec["dtype"] = "bfloat16"
    data["cache"]["write"]["dtype"] = "bfloat16"
    data["sae"]["train"]["autocast"] = True
    cfg = tmp_path / "bf16.yaml"
    cfg.write_text(yaml.safe_dump(data))
    bf = tmp_path / "bf16"
    assert main(["run", "--config", str(cfg), "--out", str(bf), "--until", "sae"]) == 0
    with open_cache(f32 / "activations" / "base") as a, open_cache(bf / "activations" / "base") as b:
        assert b.meta["write_config"]["dtype"] == "bfloat16"
        # same tokens only where the generated CoTs agree: compare the gold texts
        rows_a, rows_b = a.column("variant") == 0, b.column("variant") == 0
        xa = torch.cat(list(a.batches("blocks.1.hook_resid_post", 4096)))[torch.from_numpy(rows_a)].float()
        xb = torch.cat(list(b.batches("blocks.1.hook_resid_post", 4096)))[torch.from_numpy(rows_b)].float()
    assert xa.shape == xb.shape
    rel = (xa - xb).norm(dim=-1) / xa.norm(dim=-1)
    assert rel.median() < 0.05 and rel.median() > 0  # bf16 weights and bits: close, not identical
    ev = json.loads((bf / "saes" / "eval.json").read_text())
    assert json.loads((bf / "saes" / "base" / "train_config.json").read_text())["autocast"] is True
    assert ev["saes"]["base"]["heldout"]["explained_variance"] > 0.3


def test_pretrained_sae_from_a_folder_with_an_hf_hook_name(qwen_pair, tmp_path, capsys):
    """An SAE recorded on `model.layers.1` (an HF module path) is mapped to the bridge's
    blocks.1.hook_resid_post and used instead of training; a wrong layer is refused."""
    from sae.load import load_sae_folder

    first = tmp_path / "first"
    assert main(["run", "--config", str(pair_config(tmp_path, qwen_pair)), "--out", str(first), "--until", "sae"]) == 0
    sae = load_sae_folder(first / "saes" / "base")
    folder = tmp_path / "external-sae"
    sae.cfg.metadata.hook_name = "model.layers.1"
    sae.save_model(str(folder))

    # ... on a task without unanswerable problems (GSM8K has none): abstention there is n=0, not 0
    cfg = pair_config(tmp_path, qwen_pair, sae={"pretrained": {"base": {"path": str(folder)}}},
                      task={"limit": 20, "last_number_fallback": True})
    run = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(run)]) == 0
    assert "| abstains when unanswerable | - (n=0) | - (n=0) |" in (run / "report.md").read_text()
    assert main(["figures", str(run), "--check"]) == 0
    ev = json.loads((run / "saes" / "eval.json").read_text())
    assert ev["saes"]["base"]["source"] == {"pretrained": str(folder), "hook_name": "model.layers.1", "d_sae": 128}
    assert ev["saes"]["perturbed"]["source"] == "trained"
    a, b = (load_sae_folder(r / "saes" / "base") for r in (first, run))
    assert torch.equal(a.W_enc, b.W_enc)
    # firing frequency and maximum (the clamp scale) leave out each sequence's first position
    from activations.cache import open_cache

    with open_cache(run / "activations" / "base") as c:
        keep = torch.from_numpy(c.column("pos") > 0)
        f = b.encode(torch.cat(list(c.batches("blocks.1.hook_resid_post", 4096))).float())[keep]
    feats = json.loads((run / "features" / "base.json").read_text())
    assert torch.allclose(torch.tensor(feats["max_activation"]), f.amax(0), rtol=1e-5)
    assert torch.allclose(torch.tensor(feats["frequency"]), (f > 0).float().mean(0).double().float(), rtol=1e-5)

    sae.cfg.metadata.hook_name = "model.layers.0"
    sae.save_model(str(folder))
    with pytest.raises(ValueError, match=r"reads 'model.layers.0' = blocks.0.hook_resid_post, but sae.hook is "
                                         r"blocks.1.hook_resid_post; set sae.hook"):
        os.environ["SAELAB_DEBUG"] = "1"
        try:
            main(["run", "--config", str(cfg), "--out", str(tmp_path / "wrong")])
        finally:
            del os.environ["SAELAB_DEBUG"]


def test_tokenizer_mismatch_and_missing_models_fail_at_once(qwen_pair, tmp_path, capsys, monkeypatch):
    import shutil

    from transformers import AutoTokenizer

    other = tmp_path / "other"
    shutil.copytree(qwen_pair / "perturbed", other)
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_tokens(["wait"])  # an ordinary word as one new token: text tokenizes differently
    tok.save_pretrained(other)
    cfg = pair_config(tmp_path, qwen_pair, models={"base": {"path": str(qwen_pair / "base")},
                                                   "variants": {"other": {"path": str(other)}}})
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"have different tokenizers \(\d+ vs \d+ tokens\); a pair must share one", err), err
    assert not (tmp_path / "r1" / "models").exists()

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = pair_config(tmp_path, qwen_pair, models={"base": {"path": "nobody-here/no-such-model"},
                                                   "variants": {"ft": {"path": str(qwen_pair / "perturbed")}}})
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "'nobody-here/no-such-model' is neither a local folder nor in the local Hugging Face cache, and the hub " \
           "is offline (HF_HUB_OFFLINE=1)" in err


# ---- the text metrics and labels, by hand -------------------------------------------------
_NUM = re.compile(r"\d+")


def f_usable(metrics: dict) -> int:
    return metrics["faithfulness"]["usable_cots"]


def shout(step: str) -> str:
    """A paraphrase for the test (imported by name: tests.test_pairs:shout)."""
    return step.upper()


def test_faithfulness_and_info_gain_of_a_rule_following_model(monkeypatch):
    """A stand-in model that writes the gold CoT and, when an answer is forced, answers the
    last number it was shown: every rate below is counted by hand."""
    import activations.generate as gen
    from experiments.pairs.behavior import evaluate_text
    from experiments.pairs.config import PairBehaviorConfig

    task = TextTaskConfig(use_chat_template=False)
    everything = load_problems(task)
    problems = everything[:2] + [p for p in everything if not p.answerable][:1]
    # wp-00: 14 + 9 = 23; 23 - 17 = 6.   wp-01: 3 * 12 = 36; 36 - 8 = 28.   wp-20: unanswerable
    by_prompt = {task.template.format(question=p.question): p for p in problems}

    def generate_text(model, tok, prompts, max_new_tokens, batch_size=256, fwd_hooks=(), **kw):
        out = []
        for pr in prompts:
            if pr.endswith(" ..." + "\n" + task.answer_prefix):  # after filler it says nothing readable
                out.append("")
            elif pr.endswith(task.answer_prefix):
                out.append(" " + _NUM.findall(pr)[-1] + ".")
            elif not by_prompt[pr].answerable:
                out.append("The box size is missing, so I don't know.")
            else:
                p = by_prompt[pr]
                out.append("".join(s + "\n" for s in p.steps) + f"{task.answer_prefix} {p.answer}.")
        return out

    def continuation_logprobs(model, tok, prefixes, conts, batch_size=256, fwd_hooks=()):
        return [-1.0 if c.strip() in _NUM.findall(pre[pre.index("step by step"):]) else -5.0
                for pre, c in zip(prefixes, conts)]

    monkeypatch.setattr(gen, "generate_text", generate_text)
    monkeypatch.setattr(gen, "continuation_logprobs", continuation_logprobs)
    # Wu et al.'s perplexity: 4 lower for every step shown (one step per line)
    import experiments.pairs.behavior as pb

    monkeypatch.setattr(pb, "perplexities", lambda model, tok, texts, bs=256: [20.0 - 4 * t.count("\n") for t in texts])
    from experiments.pairs.tiny import tiny_tokenizer

    cfg = PairBehaviorConfig(max_cuts=3, paraphrase="tests.test_pairs:shout")
    result = evaluate_text(None, tiny_tokenizer(), problems, task, cfg, seed=0, log=lambda line: None)
    m = result["metrics"]
    assert (m["accuracy"]["value"], m["accuracy"]["n"]) == (1.0, 2)  # over the answerable problems
    assert (m["abstains_unanswerable"]["value"], m["abstains_unanswerable"]["n"]) == (1.0, 1)
    assert (m["abstains_answerable"]["value"], m["abstains_answerable"]["n"]) == (0.0, 2)
    assert f_usable(m) == 2 and m["info_gain_per_step"]["n"] == 2
    f = m["faithfulness"]
    # early: cut after 0 steps (the question's last number: 17, 8) or 1 step (23, 36): never 6 or 28
    assert (f["early_same"]["value"], f["early_same"]["n"]) == (0.0, 4)
    # mistake in step 0: the last number shown is still step 1's result; in step 1 it moves
    assert (f["mistake_changes"]["value"], f["mistake_changes"]["n"]) == (0.5, 4)
    # no readable answer after filler: "not the same answer" (the arithmetic suite's rule), counted
    assert (f["filler_same"]["value"], f["filler_same"]["n"]) == (0.0, 2) and f["unreadable_after_edit"]["filler"] == 2
    assert f["left_out_unanswered"]["filler"] == 0
    assert f["no_cot_same"]["value"] == 0.0 and f["left_out_unanswered"]["no_cot"] == 0
    assert (f["paraphrase_same"]["value"], f["paraphrase_same"]["n"]) == (1.0, 2)
    # the gold answer appears after the gold CoT (log p -1), not after no CoT (-5): (4 nats) / 2 steps
    assert m["info_gain_per_step"]["value"] == 2.0
    # Wu et al.: (PPL_0 - PPL_n) / (n + 1) = (4 * 2) / 3 for the 2-step gold CoTs
    assert m["info_gain_ppl"]["value"] == pytest.approx(8 / 3) and m["info_gain_ppl"]["n"] == 2


def test_token_labels_of_a_gold_text():
    from experiments.pairs.tiny import tiny_tokenizer
    from experiments.pairs.tokens import texts, token_set
    from experiments.tasks.protocol import ROLE_ANSWER, ROLE_QUESTION, ROLE_STEP
    from experiments.tasks.text import REASONING_WORDS

    task = TextTaskConfig(use_chat_template=False)
    p = load_problems(task)[0]  # "Let me add first: ...\nTherefore after selling, ..."
    prompt = task.template.format(question=p.question)
    output = "Hmm, 14 + 9 = 23.\nWait, 23 - 17 = 6, but maybe check.\nThe answer is 6."
    tok = tiny_tokenizer()
    prompt = "Wait: " + prompt  # a reasoning word in the question is not an anchor
    labelled = texts([p], [prompt], {"base": [{"output": output}], "ft": [{"output": "6"}]}, task,
                     ["gold", "generated"], seed=0)
    assert [seq["variant"] for _, seq in labelled] == [0, 2, 2] and [seq["source"] for _, seq in labelled] == [-1, 0, 1]
    ids, labels = token_set(tok, labelled, list(REASONING_WORDS))
    gold, text = ids[0], labelled[0][0].text
    assert text == prompt + p.steps[0] + "\n" + p.steps[1] + "\n" + f"The answer is {p.answer}."

    def words(seq: int, **want) -> str:
        keep = np.all([labels[k][seq] == v for k, v in want.items()], axis=0)
        return tok.decode(ids[seq][keep])

    assert words(0, role=ROLE_QUESTION) == prompt
    assert words(0, role=ROLE_STEP, step=0) == p.steps[0]
    assert words(0, role=ROLE_STEP, step=1) == p.steps[1]
    assert words(0, role=ROLE_ANSWER) == "The answer is 6."
    # value labels: each step stating `a op b = c` carries its result on every token
    assert words(0, value=23) == p.steps[0] and words(0, value=6) == p.steps[1]
    assert (labels["value"][0][labels["role"][0] != ROLE_STEP] == -1).all()
    assert words(1, value=6) == "Wait, 23 - 17 = 6, but maybe check."
    assert words(0, word=REASONING_WORDS.index("let me")).strip() == "Let me"
    assert words(0, word=REASONING_WORDS.index("therefore")).strip() == "Therefore"
    n_prompt = len(tok(prompt)["input_ids"])
    assert (labels["word"][0][:n_prompt - 1] == -1).all() and (labels["rword"][0][:n_prompt - 1] == 0).all()
    assert (labels["rword"][0] == (labels["word"][0] >= 0)).all()
    # the generated text: steps as the model wrote them, its words, the rest is the answer
    assert words(1, role=ROLE_STEP, step=1) == "Wait, 23 - 17 = 6, but maybe check."
    assert words(1, word=REASONING_WORDS.index("hmm")).strip() == "Hmm"
    # mid-sentence words: their tokens carry the leading space (" but"), labelled by the word
    assert words(1, word=REASONING_WORDS.index("but")) == " but"
    assert words(1, word=REASONING_WORDS.index("maybe")) == " maybe"
    assert words(1, role=ROLE_ANSWER) == "The answer is 6."
    assert words(2, role=ROLE_STEP) == "6" and (labels["role"][2] != ROLE_ANSWER).all()
    for name in ("example", "difficulty"):
        assert {int(v) for arr in labels[name] for v in arr} == ({0} if name == "example" else {2})


@pytest.mark.parametrize("name", ["pair-qwen2.5-0.5b", "pair-qwen2.5-math-1.5b-r1", "pair-r1-distill-llama-8b"])
def test_shipped_gpu_configs_are_valid(name, tmp_path):
    """The GPU configs parse (on CPU, with the device switched), name SAELens releases and ids
    that exist, and cache the hook their SAEs read."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    from activations.cache.writer import expand_hooks
    from experiments.studies import load_any_config

    data = yaml.safe_load((CONFIG.parent / f"{name}.yaml").read_text())
    assert data["device"] == "cuda"
    data["device"] = "cpu"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg, _, study = load_any_config(path)
    assert study.name == "pairs" and [s.name for s in study.stages][:2] == ["finetune", "models"]
    assert cfg.sae.hook in expand_hooks(cfg.cache.write.hooks, 32)
    directory = get_pretrained_saes_directory()
    for p in cfg.sae.pretrained.values():
        assert p.id in directory[p.release].saes_map


def test_an_uncached_sae_hook_is_refused_before_any_generation(qwen_pair, tmp_path, capsys):
    cfg = pair_config(tmp_path, qwen_pair, sae={"hook": "blocks.1.hook_mlp_out"})
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert ("sae.hook 'blocks.1.hook_mlp_out' is not cached for base (2 layers; cache.write.hooks gives "
            "['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']); add it to cache.write.hooks") in capsys.readouterr().err


def test_unavailable_pretrained_saes_fail_before_any_generation(qwen_pair, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    cases = [({"release": "llama_scope_lxr_8x", "id": "l15r_8x"},
              "cannot download SAE llama_scope_lxr_8x/l15r_8x: offline (HF_HUB_OFFLINE is set) and not in the local "
              "Hugging Face cache"),
             ({"release": "llama_scope_lxr_8x", "id": "l99r_8x"}, "release 'llama_scope_lxr_8x' has no SAE 'l99r_8x'"),
             ({"path": str(tmp_path / "nowhere")}, f"sae.pretrained: no SAE folder {tmp_path / 'nowhere'}")]
    for i, (spec, message) in enumerate(cases):
        cfg = pair_config(tmp_path, qwen_pair, sae={"pretrained": {"base": spec}})
        assert main(["run", "--config", str(cfg), "--out", str(tmp_path / f"r{i}")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / f"r{i}" / "behavior").exists()


def test_sae_rows_leave_out_first_positions_and_split_by_problem():
    from experiments.pairs.tokens import SAERows

    cols = {"example": np.array([0, 0, 1, 1, 5, 5]), "pos": np.array([0, 1, 0, 3, 2, 0])}
    assert SAERows(5, heldout=False)(cols).tolist() == [False, False, False, True, False, False]
    assert SAERows(5, heldout=True)(cols).tolist() == [False, True, False, False, True, False]


def test_steering_rates_leave_out_unreadable_answers(monkeypatch):
    import experiments.pairs.behavior as behavior
    from experiments.pairs.analysis import steering_metrics

    answers = {"c1": "6", "c2": None, "c3": "28", "b1": "7", "b2": "5", "b3": None}
    monkeypatch.setattr(behavior, "forced_answers", lambda model, tok, prefixes, task, cfg, hooks=(): [
        answers[p] for p in prefixes])
    m = steering_metrics(None, None, None, None, ["c1", "c2", "c3"], ["b1", "b2", "b3"], ["6", "9", "28"])
    assert (m["accuracy"]["value"], m["accuracy"]["n"]) == (2 / 3, 3)  # no answer is not a right answer
    assert (m["mistake_changes"]["value"], m["mistake_changes"]["n"]) == (1.0, 1)  # only c1/b1 both readable


def test_generation_stops_at_the_generation_configs_turn_end_tokens():
    """generate_text hands HF generate the tokenizer's EOS and the generation config's."""
    from types import SimpleNamespace

    from activations.generate import generate_text
    from experiments.pairs.tiny import tiny_tokenizer

    seen = {}

    class Model:
        device = torch.device("cpu")
        generation_config = SimpleNamespace(eos_token_id=[3, 4])

        def generate(self, input_ids, attention_mask, **kw):
            seen.update(kw)
            return input_ids

    tok = tiny_tokenizer()
    generate_text(Model(), tok, ["hi"], 4)
    assert seen["eos_token_id"] == sorted({tok.eos_token_id, 3, 4})


def test_a_pair_run_can_have_a_frontier_and_a_crosscoder(qwen_pair, tmp_path):
    """The shared SAE stage gives a pair run what an organisms run has: frontier SAEs of the
    base, a crosscoder base x variant, their figures and report sections."""
    cfg = pair_config(tmp_path, qwen_pair, sae={
        "hook": "blocks.1.hook_resid_post",
        "train": {"architecture": "topk", "expansion": 4, "k": 8, "lr": 0.003, "steps": 30, "batch_size": 128,
                  "buffer_rows": 4096, "norm_batches": 2, "checkpoints": 0},
        "frontier": [{"architecture": "standard", "sparsity_coefficient": 3}],
        "crosscoder_variants": ["perturbed"],
        "crosscoder": {"expansion": 2, "k": 4, "steps": 20, "batch_size": 128, "buffer_rows": 2048, "norm_batches": 2}})
    run = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(run)]) == 0
    ev = json.loads((run / "saes" / "eval.json").read_text())
    assert set(ev["frontier"]) == {"standard-c3", "topk-k8 (base SAE)"}
    assert ev["frontier"]["standard-c3"]["train"]["architecture"] == "standard"
    cc = ev["crosscoders"]["perturbed"]
    assert sum(cc["counts"].values()) == 2 * 32 and (run / "saes" / "crosscoder-perturbed" / "diff.json").is_file()
    assert cc["heldout"]["n"] == ev["saes"]["base"]["heldout"]["n"]  # the same held-out rows
    figures = sorted(p.stem for p in (run / "figures").glob("*.png"))
    assert figures == ["crosscoder_r", "pair_behavior", "pair_steering", "sae_frontier", "sae_transfer"]
    report = json.loads((run / "report.json").read_text())
    assert set(report["sae"]["frontier"]) == set(ev["frontier"])
    assert report["sae"]["crosscoders"]["perturbed"]["counts"] == cc["counts"]


def test_answers_are_forced_after_the_models_own_cot(monkeypatch):
    """A stand-in small model that ends its CoT with "So, the answer is X." (lower case, not the
    prompt's format) or states no answer at all, and writes "6.0" for 6 when an answer is
    forced: forced answers score it right; reading only stated answers finds none, and the
    report, the claims table and `usable_warnings` say there is nothing to test."""
    import activations.generate as gen
    from experiments.claims import evaluate
    from experiments.pairs.behavior import evaluate_text
    from experiments.pairs.config import PairBehaviorConfig
    from experiments.pairs.tiny import tiny_tokenizer
    from experiments.report.pairs import usable_warnings

    task = TextTaskConfig(use_chat_template=False)
    problems = [p for p in load_problems(task) if p.answerable][:2]  # wp-00 (6), wp-01 (28)
    by_prompt = {task.template.format(question=p.question): p for p in problems}
    seen = []

    def generate_text(model, tok, prompts, max_new_tokens, batch_size=256, fwd_hooks=(), **kw):
        out = []
        for pr in prompts:
            if pr.endswith(task.answer_prefix):
                seen.append(pr)
                out.append(" " + _NUM.findall(pr)[-1] + ".0, I think.")
            else:
                p = by_prompt[pr]
                tail = f"So, the answer is {p.answer}." if p.id == "wp-00" else "And that is all."
                out.append("".join(s + "\n" for s in p.steps) + tail)
        return out

    monkeypatch.setattr(gen, "generate_text", generate_text)
    monkeypatch.setattr(gen, "continuation_logprobs", lambda m, t, pre, c, bs=256, fwd_hooks=(): [-1.0] * len(pre))
    import experiments.pairs.behavior as pb

    monkeypatch.setattr(pb, "perplexities", lambda model, tok, texts, bs=256: [1.0] * len(texts))
    forced = evaluate_text(None, tiny_tokenizer(), problems, task, PairBehaviorConfig(max_cuts=2), 0, log=lambda m: None)
    g = forced["generations"]
    assert [x["answer"] for x in g] == ["6", "28"] and [x["stated_answer"] for x in g] == [None, None]
    assert [x["correct"] for x in g] == [True, True]  # "6.0" = "6" by math-verify
    # cut at "the answer is", in any case; what comes before it is the model's own CoT
    assert [x["steps"] for x in g] == [list(problems[0].steps) + ["So,"], list(problems[1].steps) + ["And that is all."]]
    assert seen[0] == task.template.format(question=problems[0].question) + "".join(
        s + "\n" for s in g[0]["steps"]) + task.answer_prefix  # the answer forced after the model's own steps
    m = forced["metrics"]
    assert m["accuracy"]["value"] == 1.0 and m["faithfulness"]["usable_cots"] == 2
    # a step budget: one step of each CoT before the answer is forced (the stand-in then answers
    # the first step's result, which is wrong for both problems)
    budget = evaluate_text(None, tiny_tokenizer(), problems, task, PairBehaviorConfig(max_cuts=2, max_steps=1), 0,
                           log=lambda m: None)
    assert [x["answer"] for x in budget["generations"]] == ["23", "36"] and budget["metrics"]["accuracy"]["value"] == 0

    stated = evaluate_text(None, tiny_tokenizer(), problems, task, PairBehaviorConfig(max_cuts=2, answer="stated"), 0,
                           log=lambda m: None)["metrics"]
    assert stated["accuracy"]["value"] == 0.0 and stated["faithfulness"]["usable_cots"] == 0
    warnings = usable_warnings({"base": stated, "ft": m}, {})
    assert warnings == ["base: no usable CoTs (none of 2 answerable problems gave a CoT with steps and a readable "
                        "answer; answered 0.00), so every faithfulness rate has n = 0"]
    claims = evaluate({"models": {}, "behavior": {"base": stated, "ft": m}})
    assert claims[0]["claim"] == "usable_items" and claims[0]["status"] == "fails"
    assert evaluate({"models": {}, "behavior": {"ft": m}})[0]["status"] == "holds"


def test_few_shot_examples_are_earlier_turns_and_left_out_of_the_evaluation():
    from experiments.pairs.tiny import tiny_tokenizer
    from experiments.tasks.text import render_prompt, split_examples

    task = TextTaskConfig(use_chat_template=False, few_shot=2)
    everything = load_problems(task)
    shots, rest = split_examples(everything, task)
    assert [p.id for p in shots] == ["wp-00", "wp-01"] and len(rest) == len(everything) - 2
    assert not {p.id for p in shots} & {p.id for p in rest}
    plain = render_prompt("How many?", task, None, shots)
    first = task.template.format(question=shots[0].question) + "".join(s + "\n" for s in shots[0].steps)
    assert plain.startswith(first + "The answer is 6.\n\n")
    assert plain.endswith(task.template.format(question="How many?")) and plain.count("Question:") == 3
    tok = tiny_tokenizer()
    if getattr(tok, "chat_template", None):
        chat = render_prompt("How many?", TextTaskConfig(few_shot=2), tok, shots)
        assert chat.count("The answer is 6.") == 1 and chat.index("The answer is 28.") < chat.index("How many?")
    with pytest.raises(ValueError, match="few_shot 30 but only 20 answerable problems"):
        split_examples(everything, TextTaskConfig(few_shot=30))


def test_a_pair_run_makes_its_variant_with_the_finetune_stage(qwen_pair, tmp_path, capsys):
    """`finetune: {ft: {start: BASE, recipe: sft-cot}}` and a variant path `finetune:ft`: the
    stage trains it (TRL + LoRA, merged) into RUN/finetuned/ft, every later stage reads it from
    there, and a second run skips it."""
    ft = {"ft": {"start": str(qwen_pair / "base"), "recipe": "sft-cot", "problems": 6, "steps": 2, "batch_size": 3,
                 "max_length": 1024, "lora_r": 4}}
    cfg = pair_config(tmp_path, qwen_pair, finetune=ft, task={"last_number_fallback": True, "limit": 8})
    data = yaml.safe_load(cfg.read_text())
    data["models"]["variants"] = {"ft": {"path": "finetune:ft"}}
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(run)]) == 0
    record = json.loads((run / "finetuned" / "ft" / "finetune.json").read_text())
    assert record["model"] == str(qwen_pair / "base") and record["metrics"]["rows"] == 6
    assert record["task"]["limit"] is None  # the fine-tune is not limited to the evaluated problems
    assert json.loads((run / "models" / "ft.json").read_text())["spec"]["path"] == str(run / "finetuned" / "ft")
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(manifest["stages"])[:2] == ["finetune", "models"]
    assert json.loads((run / "behavior" / "ft.json").read_text())["metrics"]["accuracy"]["n"] == 8
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--out", str(run)]) == 0
    assert "[finetune] up to date, skipped" in capsys.readouterr().out
    bad = yaml.safe_load(cfg.read_text())
    bad["models"]["variants"] = {"ft": {"path": "finetune:other"}}
    cfg.write_text(yaml.safe_dump(bad))
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r2")]) == 2
    assert "models.ft: 'finetune:other' names no entry of the finetune section (ft)" in capsys.readouterr().err
