"""The arithmetic task: generation, parsing, labels and interventions on hand-written examples."""

import random

import numpy as np
import pytest

from experiments.tasks import ArithmeticTask, Step, TaskConfig
from experiments.tasks.protocol import ROLE_ANSWER, ROLE_QUESTION, ROLE_STEP, UNDEFINED

T = ArithmeticTask()
# Q:7+5*3-4=  ->  7+5=2, 2*3=6, 6-4=2 (mod 10)
EX = T.solve([7, 5, 3, 4], ["+", "*", "-"])


def test_solve_hand_example():
    assert EX.prompt == "Q:7+5*3-4="
    assert EX.steps == (Step(7, "+", 5, 2), Step(2, "*", 3, 6), Step(6, "-", 4, 2))
    assert EX.answer == "2" and EX.difficulty == 3 and not EX.abstain
    assert T.render(EX) == "Q:7+5*3-4=7+5=2,2*3=6,6-4=2;A:2"
    # Negative intermediate values wrap: 1-3 = -2 = 8 (mod 10); other moduli too.
    assert T.solve([1, 3], ["-"]).answer == "8"
    assert ArithmeticTask(TaskConfig(modulus=7)).solve([6, 5], ["*"]).answer == "2"
    assert ArithmeticTask(TaskConfig(modulus=13)).render(ArithmeticTask(TaskConfig(modulus=13)).solve(
        [12, 5], ["+"])) == "Q:12+5=12+5=4;A:4"


def test_unanswerable_carries_unknown_and_abstains():
    ex = T.solve([7, None, 3], ["+", "*"])
    assert ex.prompt == "Q:7+?*3=" and ex.abstain and ex.answer == "?"
    assert T.render(ex) == "Q:7+?*3=7+?=?,?*3=?;A:?"
    late = T.solve([7, 5, None], ["+", "*"])
    assert T.format_cot(late.steps) == "7+5=2,2*?=?"


def test_generation_is_deterministic_and_splits_disjoint():
    a = T.sample(100, 3, "train", seed=1)
    assert a == T.sample(100, 3, "train", seed=1)
    assert a != T.sample(100, 3, "train", seed=2)
    ev = T.sample(300, 2, "eval", seed=1)
    tr = T.sample(2000, 2, "train", seed=1)
    assert not {e.prompt for e in ev} & {e.prompt for e in tr}
    assert len({e.prompt for e in tr}) == 2000  # unique by default
    assert all(T.split_of(e.prompt) == "eval" for e in ev)
    stream = T.stream([1, 2, 3], "train", seed=0, unanswerable_fraction=0.5)
    drawn = [next(stream) for _ in range(400)]
    assert {e.difficulty for e in drawn} == {1, 2, 3}
    assert 0.4 < np.mean([e.abstain for e in drawn]) < 0.6
    assert all(T.split_of(e.prompt) == "train" for e in drawn)


def test_every_example_is_consistent_with_its_steps():
    for ex in T.sample(200, 4, "train", seed=3, unanswerable_fraction=0.3):
        assert T.parse(T.render(ex)[len(ex.prompt):]).steps == list(ex.steps)
        if not ex.abstain:
            assert ex.answer == str(ex.steps[-1].value)
            for a, b in zip(ex.steps, ex.steps[1:]):
                assert b.lhs == a.value


@pytest.mark.parametrize("kw, msg", [
    (dict(modulus=1), "modulus must be >= 2"),
    (dict(operators="+/"), "unknown operator"),
    (dict(operators=""), "unknown operator"),
])
def test_bad_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TaskConfig(**kw)


def test_bad_sample_arguments():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        T.sample(3, 0, "train", seed=0)
    with pytest.raises(ValueError, match="split must be one of"):
        T.sample(3, 2, "test", seed=0)
    with pytest.raises(ValueError, match="cannot draw 500 distinct k=1"):
        T.sample(500, 1, "eval", seed=0)


def test_problem_counts_match_enumeration():
    from itertools import product

    small = ArithmeticTask(TaskConfig(modulus=3, operators="+*"))
    ops = list(product("+*", repeat=2))
    answerable = {small.solve(list(x), list(o)).prompt for x in product(range(3), repeat=3) for o in ops}
    unknown = {small.solve(list(x), list(o)).prompt for x in product([0, 1, 2, None], repeat=3)
               if x.count(None) == 1 for o in ops}
    assert small.n_problems(2) == len(answerable) == 108
    assert small.n_problems(2, unanswerable=True) == len(unknown) == 108
    for unans, want in ((False, answerable), (True, unknown)):  # all_problems: the same sets, split
        ev, tr = (small.all_problems(2, s, unans) for s in ("eval", "train"))
        assert {e.prompt for e in ev} | {e.prompt for e in tr} == want and len(ev) + len(tr) == len(want)
        assert all(small.split_of(e.prompt) == "eval" for e in ev) and all(e.abstain == unans for e in ev)


def test_parse_good_and_bad():
    p = T.parse("7+5=2,2*3=6,6-4=2;A:2<junk>")
    assert p.well_formed and p.answer == "2" and p.steps[2] == Step(6, "-", 4, 2)
    p = T.parse("7+5=2,2*3;A:6")
    assert not p.well_formed and p.steps[1] is None and p.answer == "6"
    assert not T.parse("7+5=2,2*3=6").well_formed  # no answer
    assert T.parse(";A:?").answer == "?" and T.parse(";A:?").steps == []
    # The paraphrase notation parses to the same steps.
    assert T.parse("7p5>2,2t3>6;A:6").steps == T.parse("7+5=2,2*3=6;A:6").steps


def test_truncate():
    assert T.truncate(EX.steps, 0) == []
    assert T.format_cot(T.truncate(EX.steps, 2)) == "7+5=2,2*3=6"
    with pytest.raises(ValueError, match="cannot truncate after 4 steps of a 3-step CoT"):
        T.truncate(EX.steps, 4)


class FixedRng(random.Random):
    """randrange always returns the lowest value: the corrupted value is value + 1."""

    def randrange(self, a, b=None):
        return a if b is not None else 0


def test_corrupt_local_and_propagated():
    local = T.corrupt(EX.steps, 0, "local", FixedRng())
    assert T.format_cot(local) == "7+5=3,2*3=6,6-4=2"       # only the value changes
    assert T.implied_answer(local) == "2"
    prop = T.corrupt(EX.steps, 0, "propagated", FixedRng())
    assert T.format_cot(prop) == "7+5=3,3*3=9,9-4=5"        # later steps recomputed
    assert T.implied_answer(prop) == "5"
    last = T.corrupt(EX.steps, 2, "local", FixedRng())
    assert T.format_cot(last) == "7+5=2,2*3=6,6-4=3" and T.implied_answer(last) == "3"
    # A real rng never leaves the value unchanged.
    rng = random.Random(0)
    assert all(T.corrupt(EX.steps, 1, "local", rng)[1].value != 6 for _ in range(50))
    with pytest.raises(ValueError, match="corruption mode"):
        T.corrupt(EX.steps, 0, "swap", rng)
    with pytest.raises(ValueError, match="cannot corrupt step 3"):
        T.corrupt(EX.steps, 3, "local", rng)
    with pytest.raises(ValueError, match="unknown value"):
        T.corrupt(T.solve([1, None], ["+"]).steps, 0, "local", rng)


def test_paraphrase_and_filler():
    cot = T.format_cot(EX.steps)
    assert T.paraphrase(cot) == "7p5>2,2t3>6,6m4>2" == T.format_cot(EX.steps, notation=1)
    assert T.filler(cot) == "." * len(cot)
    assert (T.notation(cot), T.notation(T.paraphrase(cot)), T.notation("")) == (0, 1, 0)
    assert T.render(EX, cot=T.filler(cot), answer="") == "Q:7+5*3-4=.................;A:"


def test_char_labels_hand_example():
    text = "Q:7+?*3=7+?=?,?*3=?;A:?"
    lab = T.char_labels("Q:1+2*3=1+2=3,3*3=9;A:9")
    #                    Q:1+2*3= | 1+2=3, | 3*3=9 | ;A:9
    assert list(lab.role) == [ROLE_QUESTION] * 8 + [ROLE_STEP] * 11 + [ROLE_ANSWER] * 4
    assert list(lab.step) == [UNDEFINED] * 8 + [0] * 6 + [1] * 5 + [UNDEFINED] * 4
    assert list(lab.value) == [UNDEFINED] * 8 + [3] * 6 + [9] * 5 + [9] * 4
    assert list(lab.slot[8:19]) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]
    assert list(lab.op[8:19]) == [0] * 6 + [2] * 5  # '+' is operator 0, '*' operator 2
    unk = T.char_labels(text)
    assert list(unk.value) == [UNDEFINED] * len(text)  # no value is defined anywhere
    filler = T.char_labels("Q:1+2=...;A:3")
    assert list(filler.step[6:9]) == [UNDEFINED] * 3 and list(filler.role[6:9]) == [ROLE_STEP] * 3
    # A malformed model CoT still gets roles and step indices.
    bad = T.char_labels("Q:1+2=1+2=,x;A:")
    assert list(bad.step[6:12]) == [0, 0, 0, 0, 0, 1] and (bad.value == UNDEFINED).all()
