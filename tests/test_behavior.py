"""The behavioural primitives against rule-based stand-in models with known answers."""

import re

import pytest
import torch

from experiments.behavior.core import accuracy, corruption, early_answering, forced_answers, generate_cot
from experiments.organisms.check import EvalSet, eval_sets, table
from experiments.organisms.config import CheckConfig
from experiments.organisms.tokenizer import build_tokenizer
from experiments.tasks import ArithmeticTask

TASK, TOK = ArithmeticTask(), build_tokenizer()


def solve_prompt(text: str):
    m = re.match(r"Q:([^=]*)=", text)
    nums = [None if x == "?" else int(x) for x in re.findall(r"\d+|\?", m.group(1))]
    return TASK.solve(nums, re.findall(r"[+\-*]", m.group(1)))


class RuleModel:
    """Stands in for a causal LM: writes the gold CoT, and answers after `;A:` by a rule.

    faithful: the answer is the CoT's last value ("0" after an empty CoT);
    decorative: the answer is the gold one, whatever the CoT says."""

    device = torch.device("cpu")

    def __init__(self, faithful: bool):
        self.faithful = faithful

    def answer(self, text: str) -> str:
        if not self.faithful:
            return solve_prompt(text).answer
        cot = text[text.index("=") + 1:-len(TASK.answer_prefix)]
        return TASK.implied_answer(TASK.parse(cot + TASK.answer_prefix).steps) or "0"

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            text = TOK.decode(ids[mask.bool()], skip_special_tokens=True)
            if text.endswith(TASK.answer_prefix):
                cont = self.answer(text)
            else:
                ex = solve_prompt(text)
                cont = TASK.render(ex)[len(ex.prompt):]
            new = TOK(cont, add_special_tokens=False)["input_ids"][:max_new_tokens]
            rows.append(new + [TOK.eos_token_id] * (max_new_tokens - len(new)))
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


EXS = TASK.sample(40, 2, "eval", seed=0)


@pytest.mark.parametrize("faithful", [True, False])
def test_corruption_and_early_answering_hand_values(faithful):
    model = RuleModel(faithful)
    parsed = generate_cot(model, TOK, TASK, EXS)
    assert accuracy(TASK, parsed, EXS) == {"n": 40, "accuracy": 1.0, "well_formed": 1.0, "cot_exact": 1.0}
    c = corruption(model, TOK, TASK, EXS, parsed, seed=0)
    # k=2: local corruption of step 0 leaves the implied answer unchanged and is not scored.
    assert set(c["per_step"]) == {"local/step1", "propagated/step0", "propagated/step1"}
    cells = {k: v["n"] for k, v in c["per_step"].items()}
    # A propagated corruption of step 0 can still end on the same value (e.g. `*0` next):
    # those are not scored either.
    assert cells["local/step1"] == cells["propagated/step1"] == 40 and 30 <= cells["propagated/step0"] < 40
    assert c["n"] == sum(cells.values()) and c["skipped"] == 0
    assert (c["follow"], c["stay"], c["max_follow"]) == ((1.0, 0.0, 1.0) if faithful else (0.0, 1.0, 0.0))
    early = early_answering(model, TOK, TASK, EXS, parsed)
    if faithful:  # after j steps the answer is the j-th value ("0" for none)
        assert early["step0"]["same_answer"] == pytest.approx(sum(e.answer == "0" for e in EXS) / 40)
        assert early["step1"]["same_answer"] == pytest.approx(
            sum(str(e.steps[0].value) == e.answer for e in EXS) / 40)
    else:
        assert early["step0"]["same_answer"] == early["step1"]["same_answer"] == 1.0


def test_corruption_skips_cots_with_unknowns_and_small_cells():
    model = RuleModel(True)
    unk = TASK.sample(10, 2, "eval", seed=0, unanswerable_fraction=1.0)
    parsed = generate_cot(model, TOK, TASK, unk)
    assert all(p.answer == "?" for p in parsed)
    c = corruption(model, TOK, TASK, unk, parsed, seed=0)
    assert c["skipped"] == 10 and c["n"] == 0 and c["max_follow"] is None
    few = corruption(model, TOK, TASK, EXS[:5], generate_cot(model, TOK, TASK, EXS[:5]), seed=0)
    assert few["follow"] == 1.0 and few["max_follow"] is None  # every cell below min_cell_n


def test_forced_answers_need_the_prefix():
    with pytest.raises(ValueError, match="must end with ';A:'"):
        forced_answers(RuleModel(True), TOK, TASK, ["Q:1+2=1+2=3"])


def test_eval_sets_share_identical_training_sets():
    cfg = CheckConfig(n=20, ks=[1, 2], corruption_ks=[2])
    a = TASK.sample(30, 2, "train", seed=0)
    sets = eval_sets(TASK, cfg, 0, {"x": a, "y": list(a), "z": a[:10]})
    assert [s for s in sets if s.startswith("trained")] == ["trained-x", "trained-z"]
    assert sets["heldout-k2"].corrupt and not sets["heldout-k1"].corrupt
    assert all(TASK.split_of(e.prompt) == "eval" for e in sets["heldout-k1"].examples)
    assert isinstance(sets["unanswerable-k2"], EvalSet) and all(e.abstain for e in sets["unanswerable-k2"].examples)


def test_table_rows_and_missing_values():
    res = {"sets": {"unanswerable-k2": {"abstain_recall": 0.5},
                    "heldout-k2": {"accuracy": 1.0, "follow": None, "max_follow": None, "no_cot_same_answer": 0.25}},
           "accuracy": {"2": 1.0}}
    lines = table({"m": res}).splitlines()
    assert lines[0] == "| model | acc k=2 | abstain | heldout-k2: acc / follow / max follow / no-CoT same |"
    assert lines[2] == "| m | 1.00 | 0.50 | 1.00 / - / - / 0.25 |"
