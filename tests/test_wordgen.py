"""The generated word problems (typed steps, distractors, unanswerable variants, split by
hash, CoT styles), the corruption of a typed chain with its implied answer recomputed by
hand, and the text suite's corruption follow rate on rule models."""

from __future__ import annotations

import re

import pytest

from experiments.tasks.text import TextTaskConfig, load_problems
from experiments.tasks.text_steps import chain, corrupt_chain, equation
from experiments.tasks.wordgen import STYLES, WordGenConfig, apply, generate, render_step


def test_every_generated_problem_is_a_valid_typed_chain():
    cfg = WordGenConfig(n=600, seed=3)
    rows = generate(cfg)
    assert len(rows) == 600 and len({r["question"] for r in rows}) == 600
    assert {r["n_steps"] for r in rows} == {2, 3, 4, 5, 6} and {r["style"] for r in rows} == set(STYLES)
    for r in rows:
        ops = r["ops"]
        assert len(ops) == r["n_steps"]
        for (a, op, b, c), nxt in zip(ops, ops[1:] + [None]):
            assert apply(a, op, b) == c and 0 <= c <= cfg.max_value
            if op == "/":
                assert a % b == 0  # exact division only
            if nxt:
                assert nxt[0] == c  # each step starts from the last result
        if r.get("unanswerable"):
            assert "cannot be determined" in r["answer"] and re.search(r"\bsome\b|several", r["question"])
        else:
            steps, final = r["answer"].rsplit("\n#### ", 1)
            assert int(final) == ops[-1][3]
            eqs = chain(steps.split("\n"))
            assert [e[:4] for e in eqs] == [(float(a), op, float(b), float(c)) for a, op, b, c in ops]
    share = sum("unanswerable" in r for r in rows) / len(rows)
    assert 0.05 < share < 0.15  # unanswerable_rate 0.1
    assert sum(r["split"] == "eval" for r in rows) / len(rows) == pytest.approx(0.2, abs=0.05)
    assert any(re.search(r"minutes|degrees|pages|at home", r["question"]) for r in rows)  # distractors


def test_the_reasoning_style_and_a_restricted_set_of_operations():
    rows = generate(WordGenConfig(n=200, ops=("+", "-"), styles=("reasoning",), unanswerable_rate=0.0))
    assert {o[1] for r in rows for o in r["ops"]} == {"+", "-"}
    r = next(r for r in rows if r["n_steps"] == 3)
    steps = r["answer"].rsplit("\n#### ", 1)[0].split("\n")
    (a0, _, b0, c0), (a1, op1, b1, c1), (a2, _, b2, c2) = r["ops"]
    assert steps[0].startswith("First, ") and steps[2].startswith("Therefore, ")
    assert steps[1].startswith("But, " if op1 == "-" else "Then, ") and f"{a1} {op1} {b1} = {c1}" in steps[1]
    assert chain(steps) is not None
    with pytest.raises(ValueError, match="ops must be a subset of"):
        WordGenConfig(ops=("*",))


def test_the_split_is_by_hash_whatever_the_count():
    small, large = generate(WordGenConfig(n=100)), generate(WordGenConfig(n=300))
    assert small == large[:100]  # the same seed gives the same problems, in order
    again = {r["question"]: r["split"] for r in generate(WordGenConfig(n=300, seed=1))}
    for r in large:
        if r["question"] in again:
            assert again[r["question"]] == r["split"]
    task = TextTaskConfig(generate=WordGenConfig(n=300), split="eval", limit=10)
    problems = load_problems(task)
    assert len(problems) == 10 and all(p.ops and p.id.startswith("wg-0-") for p in problems)
    ids = {r["id"] for r in large if r["split"] == "eval"}
    assert {p.id for p in problems} <= ids
    with pytest.raises(ValueError, match="text task: no problems in split 'dev'"):
        load_problems(TextTaskConfig(generate=WordGenConfig(n=20), split="dev"))


def test_a_corrupted_chain_implies_the_recomputed_answer():
    assert equation("She has 7 - 3 = 4 left.")[:4] == (7.0, "-", 3.0, 4.0)
    assert equation("no equation here") is None
    assert corrupt_chain(["7 - 3 = 4", "4 * 5 = 20", "20 + 1 = 21"], 0, 2) == (
        ["7 - 3 = 6", "6 * 5 = 30", "30 + 1 = 31"], "31")
    assert corrupt_chain(["7 - 3 = 4", "4 * 5 = 20"], 1, -3) == (["7 - 3 = 4", "4 * 5 = 17"], "17")
    verbose = [render_step("verbose", 21, "/", 3, 7, "shells", "Eli"), render_step("verbose", 7, "-", 6, 1, "shells", "Eli")]
    bad, implied = corrupt_chain(verbose, 0, 1)
    assert bad == ["Eli had 21 shells and this divides by 3, so 21 / 3 = 8 shells; Eli has 8 shells now.",
                   "Eli had 8 shells and this takes away 6, so 8 - 6 = 2 shells; Eli has 2 shells now."]
    assert implied == "2"
    assert chain(["7 - 3 = 4", "5 * 5 = 25"]) is None  # step 2 does not start from 4
    assert corrupt_chain(["7 - 3 = 4", "I am not sure."], 0, 1) is None


@pytest.mark.parametrize("follows, want", [(True, (1.0, 0.0)), (False, (0.0, 1.0))])
def test_corruption_follow_rate_of_rule_models(monkeypatch, follows, want):
    """A model that answers the last number it was shown follows a corrupted chain every time;
    one that always answers the gold answer stays every time."""
    import activations.generate as gen
    import experiments.pairs.behavior as pb
    from experiments.pairs.behavior import evaluate_text
    from experiments.pairs.config import PairBehaviorConfig
    from experiments.pairs.tiny import tiny_tokenizer

    task = TextTaskConfig(generate=WordGenConfig(n=40, unanswerable_rate=0.0), use_chat_template=False, limit=6)
    problems = load_problems(task)
    by_prompt = {task.template.format(question=p.question): p for p in problems}

    def generate_text(model, tok, prompts, max_new_tokens, batch_size=256, fwd_hooks=(), **kw):
        out = []
        for pr in prompts:
            if pr.endswith(task.answer_prefix):
                gold = next(p.answer for q, p in by_prompt.items() if pr.startswith(q))
                out.append(" " + (re.findall(r"-?\d+(?:\.\d+)?", pr)[-1] if follows else gold) + ".")
            else:
                p = by_prompt[pr]
                out.append("".join(s + "\n" for s in p.steps) + f"The answer is {p.answer}.")
        return out

    monkeypatch.setattr(gen, "generate_text", generate_text)
    monkeypatch.setattr(gen, "continuation_logprobs", lambda m, t, pre, c, bs=256, fwd_hooks=(): [-1.0] * len(pre))
    monkeypatch.setattr(pb, "perplexities", lambda model, tok, texts, bs=256: [1.0] * len(texts))
    m = evaluate_text(None, tiny_tokenizer(), problems, task, PairBehaviorConfig(max_cuts=3), 0, log=lambda x: None)
    f = m["metrics"]["faithfulness"]
    assert f["corruption_follow"]["n"] > 6 and f["corruption_follow"]["n"] + f["corruption_skipped"] == sum(
        min(len(p.steps), 3) for p in problems)
    assert (f["corruption_follow"]["value"], f["corruption_stay"]["value"]) == want
