"""Every behavioural metric against hand-computed values, on a stand-in model whose
next-token choices are set by hand: it writes the gold CoT, and after `;A:` answers by a
rule, so the right value of every metric is known."""

import math
import re
from types import SimpleNamespace

import pytest
import torch

from experiments.behavior.core import Subject, answer_nll, forced_answers, generate_cot
from experiments.behavior.faithfulness import corruption, early_answering, rewritten_answers
from experiments.behavior.info_gain import info_gain
from features.stats import mean, rate, wilson
from experiments.behavior.suite import BehaviorConfig, evaluate, heldout_sets
from experiments.organisms.tokenizer import build_tokenizer
from experiments.tasks import ArithmeticTask

TASK, TOK = ArithmeticTask(), build_tokenizer()
CONF = 4.0  # logit of the rule's token; every other token has logit 0
V = len(TOK)
NLL_HIT = -math.log(math.exp(CONF) / (math.exp(CONF) + V - 1))  # NLL of the rule's token
NLL_MISS = -math.log(1 / (math.exp(CONF) + V - 1))               # NLL of any other token


def solve_prompt(text: str):
    return TASK.example(re.match(r"Q:[^=]*=", text).group(0))


class RuleModel:
    """Stands in for a causal LM.

    It writes the gold CoT (so its CoT is always right) and, after `;A:`, answers by a rule:
    faithful: the last value of the CoT it is shown ("0" when there is no readable value);
    decorative: the gold answer, whatever the CoT says.
    abstain=False: never answers `?` (an unknown is read as 0)."""

    device = torch.device("cpu")

    def __init__(self, faithful: bool, abstain: bool = True):
        self.faithful, self.abstain = faithful, abstain

    def answer(self, text: str) -> str:
        ex = solve_prompt(text)
        if ex.abstain and self.abstain:
            return "?"
        if not self.faithful:
            return ex.answer if not ex.abstain else "0"
        cot = text[len(ex.prompt):-len(TASK.answer_prefix)]
        steps = TASK.parse(cot + TASK.answer_prefix).steps
        if not steps or steps[-1] is None or steps[-1].value is None:
            return "0"
        return str(steps[-1].value)

    def continuation(self, text: str) -> str:
        if text.endswith(TASK.answer_prefix):
            return self.answer(text)
        ex = solve_prompt(text)
        return TASK.format_cot(ex.steps) + TASK.answer_prefix + self.answer(ex.prompt + TASK.format_cot(ex.steps)
                                                                             + TASK.answer_prefix)

    def generate(self, input_ids, attention_mask, max_new_tokens, **_):
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            new = TOK(self.continuation(TOK.decode(ids[mask.bool()], skip_special_tokens=True)),
                      add_special_tokens=False)["input_ids"][:max_new_tokens]
            rows.append(new + [TOK.eos_token_id] * (max_new_tokens - len(new)))
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)

    def __call__(self, input_ids, attention_mask, **_):
        """Logits CONF on the rule's next token after every prefix ending in `;A:`."""
        logits = torch.zeros(*input_ids.shape, V)
        for b, (ids, mask) in enumerate(zip(input_ids, attention_mask)):
            for t in range(int(mask.sum())):
                text = TOK.decode(ids[:t + 1], skip_special_tokens=True)
                if text.endswith(TASK.answer_prefix):
                    logits[b, t, TOK.convert_tokens_to_ids(self.answer(text)[0])] = CONF
        return SimpleNamespace(logits=logits)


EXS = TASK.sample(40, 2, "eval", seed=0)


def subject(faithful=True, abstain=True):
    return Subject(RuleModel(faithful, abstain), TOK, batch_size=16)


def test_wilson_rate_and_mean_by_hand():
    lo, hi = wilson(5, 10)  # p = 0.5: centre 0.5, half-width 1.96 * sqrt(.025 + z^2/400) / (1 + z^2/10)
    assert (lo, hi) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson(0, 50)[0] == 0.0 and wilson(50, 50)[1] == 1.0
    assert rate([True, False, True, True]) == {"value": 0.75, "n": 4, "ci95": list(wilson(3, 4)), "ci": "wilson"}
    assert rate([]) == {"value": None, "n": 0, "ci95": None}
    m = mean([1.0, 2.0, 3.0])  # sd 1, sem 1/sqrt(3), t quantile with 2 df: 4.302653
    assert m["value"] == 2.0 and m["ci95"] == pytest.approx([2 - 4.302653 / 3 ** 0.5, 2 + 4.302653 / 3 ** 0.5])


@pytest.mark.parametrize("faithful", [True, False])
def test_early_answering_aoc_by_hand(faithful):
    s = subject(faithful)
    parsed = generate_cot(s, TASK, EXS)
    assert all(p.well_formed and p.answer == ex.answer for p, ex in zip(parsed, EXS))
    early = early_answering(s, TASK, EXS, parsed)
    if faithful:  # after j steps the answer is the j-th value ("0" for none)
        changed = [((ex.answer != "0") + (str(ex.steps[0].value) != ex.answer)) / 2 for ex in EXS]
        assert early["aoc"]["value"] == pytest.approx(sum(changed) / 40)
        assert early["curve"]["2"]["0"]["value"] == pytest.approx(sum(ex.answer == "0" for ex in EXS) / 40)
    else:
        assert early["aoc"]["value"] == 0.0 and early["curve"]["2"]["1"]["value"] == 1.0
    assert early["aoc"]["n"] == 40 and early["curve"]["2"]["1"]["n"] == 40 and early["skipped"] == 0


@pytest.mark.parametrize("faithful", [True, False])
def test_corruption_by_hand(faithful):
    s = subject(faithful)
    c = corruption(s, TASK, EXS, generate_cot(s, TASK, EXS), seed=0)
    # k=2: a local corruption of step 0 leaves the implied answer unchanged: not scored.
    assert set(c["per_step"]["local"]) == {"1"} and set(c["per_step"]["propagated"]) == {"0", "1"}
    n = {f"{m}/{j}": v["follow"]["n"] for m, cells in c["per_step"].items() for j, v in cells.items()}
    # A propagated corruption of step 0 can still end on the same value (e.g. `*0` next).
    assert n["local/1"] == n["propagated/1"] == 40 and 30 <= n["propagated/0"] < 40
    assert c["follow"]["n"] == sum(n.values()) and c["skipped"] == 0
    assert (c["follow"]["value"], c["stay"]["value"]) == ((1.0, 0.0) if faithful else (0.0, 1.0))
    assert c["max_follow"] == (1.0 if faithful else 0.0)


def test_corruption_skips_cots_with_unknowns():
    s = subject(True)
    unk = TASK.sample(10, 2, "eval", seed=0, unanswerable_fraction=1.0)
    c = corruption(s, TASK, unk, generate_cot(s, TASK, unk), seed=0)
    assert c["skipped"] == 10 and c["follow"]["n"] == 0 and c["max_follow"] is None


@pytest.mark.parametrize("faithful", [True, False])
def test_paraphrase_filler_and_no_cot_by_hand(faithful):
    s = subject(faithful)
    r = rewritten_answers(s, TASK, EXS, generate_cot(s, TASK, EXS))
    zero = sum(ex.answer == "0" for ex in EXS) / 40  # a faithful reader of no value says "0"
    assert r["own"]["accuracy"]["value"] == 1.0
    assert r["paraphrase"]["accuracy"]["value"] == 1.0  # the paraphrase keeps every value
    assert r["filler"]["accuracy"]["value"] == pytest.approx(zero if faithful else 1.0)
    assert r["no_cot"]["accuracy"]["value"] == pytest.approx(zero if faithful else 1.0)
    assert r["no_cot"]["accuracy"]["n"] == 40 and r["skipped"] == 0


@pytest.mark.parametrize("faithful", [True, False])
def test_info_gain_by_hand(faithful):
    s = subject(faithful)
    g = info_gain(s, TASK, EXS, generate_cot(s, TASK, EXS))
    nll = lambda said, gold: NLL_HIT if said == gold else NLL_MISS  # noqa: E731
    want = []
    for ex in EXS:
        said = ["0", str(ex.steps[0].value), ex.answer] if faithful else [ex.answer] * 3
        curve = [nll(a, ex.answer) for a in said]
        want.append((curve[0] - curve[2]) / 2)
    assert g["value"] == pytest.approx(sum(want) / 40) and g["n"] == 40
    assert g["nll"]["2"]["2"]["value"] == pytest.approx(NLL_HIT)  # the full CoT always gives gold
    if not faithful:
        assert g["value"] == pytest.approx(0.0) and g["gain"]["2"]["1"]["value"] == pytest.approx(0.0)


def test_answer_nll_sums_the_answer_tokens():
    s = subject(True)
    got = answer_nll(s, ["Q:1+2=1+2=3;A:", "Q:1+2=1+2=3;A:"], ["3", "4"])
    assert got == pytest.approx([NLL_HIT, NLL_MISS])


def test_forced_answers_need_the_prefix():
    with pytest.raises(ValueError, match="must end with ';A:'"):
        forced_answers(subject(), TASK, ["Q:1+2=1+2=3"])


def test_suite_abstention_accuracy_and_length_by_hand():
    cfg = BehaviorConfig(n=20, ks=[1, 2], faithfulness_ks=[2], abstention_ks=[2], batch_size=16)
    sets = heldout_sets(TASK, cfg, seed=0)
    assert all(TASK.split_of(e.prompt) == "eval" for s in sets.values() for e in s)
    assert all(e.abstain for e in sets["unanswerable-k2"]) and not any(e.abstain for e in sets["k2"])
    r = evaluate(subject(True), TASK, cfg, seed=0)
    assert r["accuracy"]["1"]["value"] == r["accuracy"]["2"]["value"] == 1.0
    assert r["accuracy"]["2"]["n"] == 20 and r["well_formed"]["1"]["value"] == 1.0
    # gold CoTs: 5 characters per step and a ',' between steps, one token per character
    plain = lambda d: {k: d[k] for k in ("value", "n", "ci95", "ci")}  # noqa: E731  (without by_problem)
    assert {k: plain(v) for k, v in r["cot_length"]["by_k"].items()} == {"1": mean([5] * 20), "2": mean([11] * 20)}
    assert r["cot_length"]["by_k"]["2"]["by_problem"] == {"sum": [11.0] * 20, "count": [1] * 20}
    assert r["abstention"]["recall"]["value"] == 1.0 and r["abstention"]["precision"] == rate([True] * 20)
    assert r["info_gain_per_step"]["scorer"] == "self" and "trained" not in r
    never = evaluate(subject(True, abstain=False), TASK, cfg, seed=0,
                     reference=subject(True), trained=EXS[:10])
    assert plain(never["abstention"]["recall"]) == rate([False] * 20)
    assert never["abstention"]["precision"]["n"] == 0  # never abstained: precision undefined
    assert never["info_gain_per_step"]["scorer"] == "reference"
    assert never["trained"]["accuracy"]["n"] == 10 and never["trained"]["corruption_follow_rate"]["value"] == 1.0


def test_behavior_config_errors():
    with pytest.raises(ValueError, match="behavior.faithfulness_ks must be a non-empty list"):
        BehaviorConfig(faithfulness_ks=[])
    with pytest.raises(ValueError, match="behavior.n must be >= 1"):
        BehaviorConfig(n=0)
