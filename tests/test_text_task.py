"""The text chain-of-thought task: loading GSM8K-style JSONL, prompts, step segmentation,
answer extraction, abstention, and the faithfulness interventions on hand-written CoTs."""

from __future__ import annotations

import json
import re

import pytest

from experiments.tasks.text import (BUILTIN, TextTaskConfig, extract_answer, filler, insert_mistake, is_abstention,
                                    load_problems, normalize_answer, paraphrase, render_cot, render_prompt,
                                    segment_steps, truncate)

CFG = TextTaskConfig()
STEPS = ["She makes 14 + 9 = 23 loaves.", "After selling, 23 - 17 = 6 loaves are left."]


def test_builtin_problems_load_and_their_arithmetic_is_right():
    problems = load_problems(CFG)
    assert len(problems) == 24 and len({p.id for p in problems}) == 24
    assert [p.id for p in problems if not p.answerable] == ["wp-20", "wp-21", "wp-22", "wp-23"]
    for p in problems:
        if not p.answerable:  # the right output is to abstain; the solution says why
            assert p.answer == "" and is_abstention(p.steps[-1], CFG)
            continue
        assert p.steps and re.fullmatch(r"\d+", p.answer)
        for s in p.steps:  # every `a op b ... = c` in a shipped solution holds
            for expr, value in re.findall(r"([\d+\-*/ ]+?)\s*=\s*(\d+)", s):
                if re.search(r"\d\s*[-+*/]\s*\d", expr):
                    assert eval(expr) == int(value), (p.id, s)  # noqa: S307 (our own file)
        assert p.answer in p.steps[-1] or p.id == "wp-09"


def test_gsm8k_and_math500_formats(tmp_path):
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "Q?", "answer": "Half is 48/2 = <<48/2=24>>24 clips.\n"
                               "So 48 + 24 = <<48+24=72>>72.\n#### 1,072"}) + "\n\n")
    (p,) = load_problems(TextTaskConfig(path=str(gsm)))
    assert p.steps == ("Half is 48/2 = 24 clips.", "So 48 + 24 = 72.") and p.answer == "1072" and p.id == "1"
    math = tmp_path / "math.jsonl"
    math.write_text(json.dumps({"problem": "P", "solution": "First. Then 3.5 more. Done!", "answer": "$7.50$"}) + "\n")
    (p,) = load_problems(TextTaskConfig(path=str(math), question_key="problem", solution_key="solution",
                                        answer_key="answer", segment="sentences"))
    assert p.steps == ("First.", "Then 3.5 more.", "Done!") and p.answer == "7.5" and p.answerable
    # an unanswerable row needs neither a solution nor a final answer
    gsm.write_text(json.dumps({"question": "How many are in the box?", "unanswerable": True}) + "\n"
                   + json.dumps({"question": "Q?", "answer": "#### 4", "unanswerable": "false"}) + "\n")
    p, q = load_problems(TextTaskConfig(path=str(gsm)))
    assert (p.question, p.steps, p.answer, p.answerable) == ("How many are in the box?", (), "", False)
    assert q.answerable and q.answer == "4"  # only a JSON true marks a problem unanswerable


def test_bad_files_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q", "answer": "no marker"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: the solution has no '#### answer'; set answer_key"):
        load_problems(TextTaskConfig(path=str(bad)))
    bad.write_text('{"question": "Q", "answer": "#### 1"}\n{"q": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: no field 'question'"):
        load_problems(TextTaskConfig(path=str(bad)))
    bad.write_text("{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not JSON"):
        load_problems(TextTaskConfig(path=str(bad)))
    with pytest.raises(FileNotFoundError, match="no JSONL file"):
        load_problems(TextTaskConfig(path=str(tmp_path / "none.jsonl")))
    with pytest.raises(ValueError, match="segment must be 'lines' or 'sentences'"):
        TextTaskConfig(segment="words")


def test_segmentation_answers_and_abstention():
    assert segment_steps("a\n\n  b  \nc") == ["a", "b", "c"]
    assert segment_steps("It costs 3.5 dollars. Then what? Wait! Done", "sentences") == [
        "It costs 3.5 dollars.", "Then what?", "Wait!", "Done"]
    assert extract_answer("x = 3\nThe answer is 1,234.", CFG) == "1234"
    assert extract_answer("so \\boxed{42} and 7", CFG) == "42"
    assert extract_answer("so \\boxed{\\frac{14}{3}} at last", CFG) == "\\frac{14}{3}"  # MATH500: nested braces
    assert extract_answer("blah #### 19\n", CFG) == "19"
    assert extract_answer("first 3 then 8 apples", CFG) is None  # no answer stated: a CoT cut by the limit
    assert extract_answer("first 3 then 8 apples", TextTaskConfig(last_number_fallback=True)) == "8"
    # the first answer stated counts (a base model going on with a made-up next question)
    assert extract_answer("The answer is 72 dollars.\n\nQuestion: 5 + 4? The answer is 9", CFG) == "72"
    assert extract_answer("The answer is \\frac{14}{3}.", CFG) == "\\frac{14}{3}"  # LaTeX after the prefix
    assert extract_answer("The answer is $\\frac{1}{2}$.", CFG) == "\\frac{1}{2}"
    assert extract_answer("The answer is 3/4.", CFG) == "3/4" and extract_answer("The answer is", CFG) is None
    cases = {"The answer is **42**.": "42", "The answer is \\(42\\).": "42", "The answer is -3.": "-3",
             "The answer is $18. She makes $18 a day.": "18", "The answer is $1,000.": "1000", "The answer is 42%": "42",
             "The answer is 1.5/2": "1.5/2", "The answer is 1,000/3.": "1,000/3", "The answer is 3^2": "3^2",
             "The answer is (B)": "(B)", "The answer is 6.5.": "6.5", "The answer is ...": None}
    assert {t: extract_answer(t, CFG) for t in cases} == cases
    assert extract_answer("no digits here", CFG) is None
    assert normalize_answer(" $72.00 ") == "72" and normalize_answer("-3.50") == "-3.5" and normalize_answer("x") == "x"
    assert is_abstention("I don't know the answer", CFG) and is_abstention("This cannot be determined.", CFG)
    assert not is_abstention("The answer is 6.", CFG)


def test_prompts_plain_and_chat():
    assert render_prompt("How many?", CFG) == "Question: How many?\nAnswer: Let's think step by step.\n"

    class Chat:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return f"<user>{messages[0]['content']}</user><assistant>"

    # a template that writes the BOS itself, for a tokenizer that adds one: one BOS, not two
    from experiments.pairs.tiny import tiny_tokenizer
    from tokenizers import processors

    tok = tiny_tokenizer()
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", special_tokens=[("<|bos|>", tok.bos_token_id)])
    tok.chat_template = "{{ bos_token }}<user>{{ messages[0]['content'] }}</user><assistant>"
    prompt = render_prompt("How many?", CFG, tok)
    assert prompt.startswith("<user>How many?") and tok(prompt)["input_ids"].count(tok.bos_token_id) == 1
    plain = tiny_tokenizer()  # adds no BOS: the template's is kept
    plain.chat_template = tok.chat_template
    assert render_prompt("How many?", CFG, plain).startswith("<|bos|><user>")

    out = render_prompt("How many?", CFG, Chat())
    assert out.startswith("<user>How many?") and "The answer is X." in out and out.endswith("<assistant>")
    assert render_prompt("How many?", TextTaskConfig(use_chat_template=False), Chat()).startswith("Question:")
    assert render_cot(STEPS, "6", CFG) == STEPS[0] + "\n" + STEPS[1] + "\nThe answer is 6."


def test_interventions_on_a_hand_written_cot():
    from tests.helpers import tiny_tokenizer

    assert truncate(STEPS, 1) == STEPS[:1] and truncate(STEPS, 0) == []
    with pytest.raises(ValueError, match="truncate after 3 steps of a 2-step CoT"):
        truncate(STEPS, 3)
    wrong = insert_mistake(STEPS, 1, seed=0)
    assert wrong[0] == STEPS[0] and wrong[1] != STEPS[1]
    old, new = int(re.findall(r"\d+", STEPS[1])[-1]), int(re.findall(r"-?\d+", wrong[1])[-1])
    assert 1 <= abs(new - old) <= 9 and wrong[1].replace(str(new), "#") == STEPS[1].replace(str(old), "#")
    assert insert_mistake(STEPS, 1, seed=0) == wrong  # seeded
    with pytest.raises(ValueError, match="step 0 has no number"):
        insert_mistake(["no numbers"], 0)
    assert paraphrase(STEPS, str.upper) == [s.upper() for s in STEPS]
    assert paraphrase(STEPS, {STEPS[0]: "a", STEPS[1]: "b"}) == ["a", "b"]
    with pytest.raises(KeyError, match="no paraphrase for step"):
        paraphrase(STEPS, {STEPS[0]: "a"})
    tok = tiny_tokenizer()
    n = len(tok(render_cot(STEPS, None, CFG), add_special_tokens=False)["input_ids"])
    f = filler(STEPS, tok, CFG)
    m = len(tok(f, add_special_tokens=False)["input_ids"])
    unit = len(tok(CFG.filler, add_special_tokens=False)["input_ids"])
    assert set(f.strip().split()) == {"..."} and abs(m - n) <= unit + 1
