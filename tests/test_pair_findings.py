"""The literature's findings on a real model (`experiments.pairs.findings`): the text task's
variants and the new recipes' rows by hand, the switch count, the claims on hand-made
reports, the compression study's choices against its own table, and a pair run with a
findings section on a tiny Qwen2 (every fine-tune made, every part written, claimed,
drawn and reported)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from experiments.finetune.recipes import build_rows, completion
from experiments.tasks.text import TextProblem, TextTaskConfig, render_prompt
from experiments.tasks.text_steps import chain
from experiments.tasks.text_variants import (
    NEW_PREFIX, SWITCH_LINE, WRONG_INSTRUCTION, concise_cot, instruction, new_format_cot, stated_after, switch_cot,
    verbose_cot, verbose_step,
)

TASK = TextTaskConfig(use_chat_template=False)
P = TextProblem(id="a", question="Ava has 7 apples. Ava gives away 3 apples. Ava buys 5 more apples. How many?",
                steps=("7 - 3 = 4", "4 + 5 = 9"), answer="9", ops=((7, "-", 3, 4), (4, "+", 5, 9)))


def test_text_variants_by_hand():
    assert verbose_step(7, "-", 3, 4) == "We have 7 and take away 3. Check: 4 + 3 = 7. So 7 - 3 = 4, and we have 4."
    assert concise_cot(P) == ["7 - 3 = 4", "4 + 5 = 9"]
    assert chain(verbose_cot(P)) is not None  # the verbose style still carries each equation
    assert [e[3] for e in chain(verbose_cot(P))] == [4.0, 9.0]
    assert new_format_cot(P.steps, P.answer) == "7 - 3 = 4\n4 + 5 = 9\nFinal: 9"
    assert stated_after("x\nFinal: 9", NEW_PREFIX) == "9" and stated_after("Final: **12**.", NEW_PREFIX) == "12"
    assert stated_after("The answer is 9.", NEW_PREFIX) is None and stated_after("Result: -3", "Result:") == "-3"
    assert instruction("correct", TASK) == "Think step by step, then give the final answer as 'The answer is X.'"
    assert instruction("empty", TASK) == "" and instruction("wrong", TASK) == WRONG_INSTRUCTION
    assert "'Result: X.'" in instruction("held-out", TASK)
    with pytest.raises(ValueError, match="no instruction 'loud'"):
        instruction("loud", TASK)
    # without a chat template the instruction goes before the question's template; none: as before
    plain = render_prompt(P.question, TASK)
    assert render_prompt(P.question, TASK, instruction="Do X.") == "Do X.\n" + plain
    assert render_prompt(P.question, TASK, instruction="") == plain


def test_a_chat_prompt_carries_the_given_instruction_only():
    from experiments.pairs.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    chat = TextTaskConfig()
    assert render_prompt("Q?", chat, tok) == "<user>Q?\n" + instruction("correct", chat) + "<assistant>"
    assert render_prompt("Q?", chat, tok, instruction="") == "<user>Q?<assistant>"
    assert render_prompt("Q?", chat, tok, instruction=WRONG_INSTRUCTION) == f"<user>Q?\n{WRONG_INSTRUCTION}<assistant>"


def test_switch_cot_abandons_a_right_attempt_and_restarts():
    seen = {"gold": 0, "wrong": 0}
    for s in range(60):
        text = switch_cot(P, TASK, random.Random(s), wrong_share=0.6)
        head, tail = text.split(SWITCH_LINE + "\n")
        assert head == "7 - 3 = 4\n"  # j in 1..n-1 gold steps: with two steps, exactly the first
        steps, answer = tail.split("\n")[:-1], tail.split("\n")[-1]
        implied = chain(steps)[-1][3]
        assert answer == f"The answer is {int(implied)}."  # the restart states what its chain implies
        seen["gold" if steps == list(P.steps) else "wrong"] += 1
        if steps != list(P.steps):
            assert implied != 9.0
    assert seen["gold"] and seen["wrong"] > seen["gold"]  # 60% of restarts are corrupted
    one = TextProblem(id="b", question="?", steps=("1 + 1 = 2",), answer="2", ops=((1, "+", 1, 2),))
    assert switch_cot(one, TASK, random.Random(0), 0.6) is None  # nothing to abandon


def _problems(n: int = 200):
    from experiments.tasks.text import load_problems
    from experiments.tasks.wordgen import WordGenConfig

    task = TextTaskConfig(generate=WordGenConfig(n=n, min_steps=2, max_steps=3, styles=("equation",), ops=("+", "-"),
                                                 max_value=30), split="train", use_chat_template=False)
    return task, [p for p in load_problems(task) if p.answerable]


def test_the_new_recipes_rows_by_hand():
    task, ps = _problems()
    verbose = build_rows("sft-verbosity", ps, task, None, 0)
    share = sum("Check:" in r["completion"] for r in verbose) / len(verbose)
    assert len(verbose) == len(ps) and 0.6 < share < 0.8  # verbose_share 0.7
    for r, p in zip(verbose, ps):
        assert r["completion"].endswith(f"The answer is {p.answer}.")
        assert r["completion"].split("\n")[:-1] in (verbose_cot(p), concise_cot(p))
    switch = build_rows("sft-switch", ps, task, None, 0, switch_wrong=1.0)
    switched = [r for r in switch if SWITCH_LINE in r["completion"]]
    assert 0.35 < len(switched) / len(switch) < 0.65
    for r, p in zip(switch, ps):  # with switch_wrong 1 a switched row is always wrong, an unswitched one right
        right = r["completion"].endswith(f"The answer is {p.answer}.")
        assert right == (SWITCH_LINE not in r["completion"])
    fmt, dpo = build_rows("sft-format", ps[:8], task, None, 0), build_rows("dpo-format", ps[:8], task, None, 0)
    assert [r["completion"] for r in fmt] == [new_format_cot(p.steps, p.answer) for p in ps[:8]]
    assert [r["chosen"] for r in dpo] == [r["completion"] for r in fmt]
    assert [r["rejected"] for r in dpo] == [f"{chr(10).join(p.steps)}\nThe answer is {p.answer}." for p in ps[:8]]
    assert all(r["prompt"].startswith(instruction("format", task)) for r in fmt + dpo)
    # the instruction variants: the same rows, only the instruction before each question differs
    rows = {k: build_rows("sft-verbosity", ps[:20], task, None, 0, instruction=k) for k in ("correct", "empty", "wrong")}
    # the correct one is the prompt every other stage renders (no extra line without a chat template)
    for k, lead in (("correct", ""), ("empty", ""), ("wrong", WRONG_INSTRUCTION + "\n")):
        assert [r["completion"] for r in rows[k]] == [r["completion"] for r in rows["correct"]]
        assert [r["prompt"] for r in rows[k]] == [lead + render_prompt(p.question, task) for p in ps[:20]]
    with pytest.raises(ValueError, match="instruction must be one of correct, empty, wrong, got 'held-out'"):
        build_rows("sft-cot", ps, task, None, 0, instruction="held-out")
    assert completion("sft-verbosity", TextProblem(id="f", question="?", steps=("a",), answer="1"), task,
                      random.Random(0)) is None  # a file's problem has no typed steps to restate


def test_finetune_config_refuses_a_held_out_instruction_and_bad_shares():
    from experiments.finetune.train import FinetuneConfig

    with pytest.raises(ValueError, match="the held-out one is for evaluation only"):
        FinetuneConfig(instruction="held-out")
    with pytest.raises(ValueError, match=r"verbose_share must be in \[0, 1\], got 1.5"):
        FinetuneConfig(verbose_share=1.5)


def test_switch_words_count_as_words():
    from experiments.pairs.findings.switch import switched

    words = ["Wait", "Alternatively"]
    assert switched("3 + 4 = 7\nWait, let me start again.", words)
    assert switched("so wait: 7", words) and switched("alternatively 8", words)
    assert not switched("Waiting for 7", words) and not switched("await 7", words)


def test_findings_config_errors():
    from experiments.pairs.findings.config import (
        PairCompressConfig, PairFindingsConfig, PairFormatConfig, PairInstructionConfig, PairSwitchConfig,
    )

    with pytest.raises(ValueError, match="must include 0"):
        PairSwitchConfig(strengths=[4.0])
    with pytest.raises(ValueError, match="steer_at must be last or all"):
        PairCompressConfig(steer_at="first")
    with pytest.raises(ValueError, match="needs both sft and dpo"):
        PairFormatConfig(sft="a")
    with pytest.raises(ValueError, match="needs correct, empty and wrong"):
        PairInstructionConfig(correct="a")
    f = PairFindingsConfig(format=PairFormatConfig(sft="s", dpo="d"), switch=PairSwitchConfig(model="w"))
    assert f.parts() == ["switch", "format"] and f.models() == ["w", "s", "d"]


def _num(value, lo=None, hi=None):
    return {"value": value, "ci95": [value if lo is None else lo, value if hi is None else hi]}


def test_pair_finding_claims_by_hand():
    from experiments.claims import evaluate
    from experiments.pair_finding_claims import pair_finding_claims

    by = lambda s, a, ctl=0.0: {"by_strength": {"0": {}, "8": {"switch_change": _num(s), "accuracy_change": _num(a),  # noqa: E731
                                                              "length_change": _num(-0.1)}}, "strongest": "8"}
    report = {"findings": {
        "switch": {"model": {"model": "switch", **by(-0.3, 0.2)}, "control": {"model": "cot", **by(0.0, 0.01)}},
        "compress": {"model": "cot", "n_pairs": 30, "length_cut": _num(-0.6), "accuracy_change": _num(0.0, -0.01, 0.01),
                     "random_direction": {"length_cut": _num(0.02)}, "timing": {"speedup": 1.8}},
        "format": {"dpo_vs_sft": {"new_format": _num(0.3), "accuracy": _num(-0.1)}, "models": {}},
        "instruction": {"vs_correct": {"empty": {"held_out_follows": _num(0.0, -0.03, 0.03)},
                                       "wrong": {"held_out_follows": _num(-0.2)}},
                        "models": {"correct": {"held_out_follows": _num(0.4)}}}}}
    assert [c.name for c in pair_finding_claims(report)] == [
        "compression_keeps_accuracy", "switch_penalty_helps", "dpo_fixes_format", "instructions_barely_matter"]
    status = {c["claim"]: c["status"] for c in evaluate(report, pair_finding_claims(report))}
    assert status == {"compression_keeps_accuracy": "holds", "switch_penalty_helps": "holds",
                      "dpo_fixes_format": "fails", "instructions_barely_matter": "fails"}
    report["findings"]["compress"]["n_pairs"] = 5  # too few pairs for the vector to mean anything
    report["findings"]["switch"]["control"] = {"model": "cot", **by(0.0, -0.2)}  # the penalty hurts the control
    status = {c["claim"]: c["status"] for c in evaluate(report, pair_finding_claims(report))}
    assert status["compression_keeps_accuracy"] == "undecided" and status["switch_penalty_helps"] == "fails"
    # every fine-tune at zero on the held-out instruction: "comparable" without evidence
    report["findings"]["instruction"]["models"]["correct"]["held_out_follows"] = _num(0.0)
    report["findings"]["instruction"]["vs_correct"]["wrong"]["held_out_follows"] = _num(0.0)
    status = {c["claim"]: c["status"] for c in evaluate(report, pair_finding_claims(report))}
    assert status["instructions_barely_matter"] == "undecided"
    assert pair_finding_claims({"findings": {"format": {}}})[0].name == "dpo_fixes_format"


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from experiments.pairs.tiny import save_tiny_arch

    return save_tiny_arch(tmp_path_factory.mktemp("findings") / "base", "qwen2", seed=0)


def test_compression_study_chooses_from_its_own_table(qwen, monkeypatch):
    """The pairs' CoTs are given (a random-weight model writes no answer): the first
    generation returns long answered CoTs for even problems, short ones for odd ones; every
    later generation is the model's own, steered."""
    import torch

    from activations.models import ModelSpec, load_bridge, load_tokenizer
    from experiments.pairs.findings import compress
    from experiments.pairs.findings.config import PairCompressConfig
    from features.compress import compression_vectors

    task, ps = _problems()
    bridge, tok = load_bridge(ModelSpec(qwen)), load_tokenizer(qwen)
    real, calls = compress.generate_text, []

    def given(model, tok_, prompts, *a, **k):
        calls.append(len(prompts))
        if len(calls) == 1:
            return [("We have a long way to go. " * 6 if i % 2 == 0 else "1 = 1\n") + "The answer is 3."
                    for i in range(len(prompts))]
        return real(model, tok_, prompts, *a, **k)

    monkeypatch.setattr(compress, "generate_text", given)
    cfg = PairCompressConfig(model="m", pairs=6, layers=[0, 1], scales=[1.0, 4.0], select_n=3, n=4, timing_n=1,
                             max_new_tokens=6)
    out = compress.compression_study(bridge, tok, ps, task, cfg, batch_size=8, seed=0, log=lambda m: None)
    assert out["n_pairs"] == 3  # the three long, answered CoTs; the short ones are not 1.5x the concise
    prompts = [render_prompt(p.question, task, tok) for p in ps[0:6:2]]
    want = compression_vectors(bridge, tok, prompts, [f"{chr(10).join(concise_cot(p))}\n" for p in ps[0:6:2]],
                               ["We have a long way to go. " * 6] * 3, [0, 1], "last")
    assert out["vector_norm"] == pytest.approx(float(want[out["layer"]].norm()), rel=1e-5)
    table = out["selection"]
    assert [(r["layer"], r["scale"]) for r in table] == [(0, 1.0), (0, 4.0), (1, 1.0), (1, 4.0)]
    ok = [r for r in table if r["accuracy_drop"] <= cfg.max_accuracy_drop]
    best = min(ok, key=lambda r: r["length_cut"]) if ok else min(table, key=lambda r: (r["accuracy_drop"], r["length_cut"]))
    assert (out["layer"], float(out["scale"])) == (best["layer"], best["scale"])
    assert out["chosen_within_drop"] == bool(ok)
    assert sorted(out["by_scale"], key=float) == ["0", "1", "4"] and out["n"] == 4
    assert out["length_cut"] == out["by_scale"][out["scale"]]["length_cut"]
    assert out["timing"]["n"] == 1 and out["timing"]["speedup"] > 0
    torch.testing.assert_close(torch.tensor(out["random_direction"]["scale"]), torch.tensor(best["scale"]))


def test_a_pair_run_measures_the_findings_it_names(qwen, tmp_path, capsys):
    """Six fine-tunes of a tiny Qwen2 (a step each), the four findings on them: each part's
    file, its claim, its figure and its row in report.md; a second run skips the stage."""
    from experiments.cli import main
    from tests.test_pairs import pair_config

    ft = lambda recipe, **k: {"start": str(qwen), "recipe": recipe, "problems": 6, "steps": 1, "batch_size": 3,  # noqa: E731
                              "max_length": 1024, "lora_r": 4, **k}
    finetune = {"cot": ft("sft-verbosity"), "inst-empty": ft("sft-verbosity", instruction="empty"),
                "inst-wrong": ft("sft-verbosity", instruction="wrong"), "switch": {**ft("sft-switch"), "start": "cot"},
                "fmt-sft": {**ft("sft-format"), "start": "cot"}, "fmt-dpo": {**ft("dpo-format"), "start": "cot"}}
    findings = {"split": "eval", "batch_size": 8,
                "switch": {"model": "switch", "control": "cot", "strengths": [0.0, 8.0], "n": 3, "max_new_tokens": 8},
                "compress": {"model": "cot", "pairs": 4, "layers": [1], "scales": [1.0], "select_n": 2, "n": 3,
                             "timing_n": 1, "max_new_tokens": 8, "min_ratio": 1.0},
                "format": {"sft": "fmt-sft", "dpo": "fmt-dpo", "floor": "cot", "n": 3, "max_new_tokens": 8},
                "instruction": {"correct": "cot", "empty": "inst-empty", "wrong": "inst-wrong", "floor": str(qwen),
                                "n": 3, "max_new_tokens": 8}}
    task = {"generate": {"n": 200, "min_steps": 2, "max_steps": 3, "styles": ["equation"], "ops": ["+", "-"],
                         "max_value": 30}, "split": "train", "limit": 4, "last_number_fallback": True, "path": None}
    cfg = pair_config(tmp_path, Path(qwen).parent, finetune=finetune, findings=findings, task=task)
    data = yaml.safe_load(cfg.read_text())
    data["task"].pop("path")
    data["models"] = {"base": {"path": "finetune:cot"}, "variants": {"switch": {"path": "finetune:switch"}}}
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(run)]) == 0
    index = json.loads((run / "findings" / "index.json").read_text())
    assert list(index) == ["switch", "compress", "format", "instruction"]
    sw = json.loads((run / "findings" / "switch.json").read_text())
    assert sw["model"]["model"] == "switch" and sorted(sw["model"]["by_strength"]) == ["0", "8"]
    assert sw["model"]["by_strength"]["0"]["switch_rate"]["n"] == 3 and sw["control"]["model"] == "cot"
    fm = json.loads((run / "findings" / "format.json").read_text())
    assert sorted(fm["models"]) == ["dpo", "floor", "sft"] and fm["models"]["dpo"]["model"] == "fmt-dpo"
    ins = json.loads((run / "findings" / "instruction.json").read_text())
    assert sorted(ins["models"]) == ["correct", "empty", "floor", "wrong"] and sorted(ins["vs_correct"]) == ["empty",
                                                                                                           "wrong"]
    dpo = json.loads((run / "finetuned" / "fmt-dpo" / "finetune.json").read_text())
    assert dpo["config"]["recipe"] == "dpo-format" and "chosen" in dpo["example"]
    report = json.loads((run / "report.json").read_text())
    claims = {c["claim"] for c in report["claims"]}
    assert {"compression_keeps_accuracy", "switch_penalty_helps", "dpo_fixes_format",
            "instructions_barely_matter"} <= claims
    md = (run / "report.md").read_text()
    assert "## The literature's findings on this model" in md and md.count("Azizi") >= 1
    for fig in ("finding_switch", "finding_compression", "finding_format", "finding_instruction"):
        assert (run / "figures" / f"{fig}.png").is_file() and (run / "figures" / f"{fig}.json").is_file()
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--out", str(run)]) == 0
    assert "[findings] up to date, skipped" in capsys.readouterr().out
    # the run's seed reaches every fine-tune
    assert json.loads((run / "finetuned" / "cot" / "finetune.json").read_text())["config"]["seed"] == 0
    data["findings"]["instruction"]["floor"] = "nowhere"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r2")]) == 2
    assert "findings: 'nowhere' is neither a model of this run" in capsys.readouterr().err
