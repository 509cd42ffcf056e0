"""The findings' recipes, the calculator loop and the fixed-scorer InfoGain, by hand.

Each recipe's data builder is checked on one problem (`Q:7+5*3=`: 7+5=2, 2*3=6 mod 10)
with the random choices forced; the calculator loop on a rule model that chooses every
step right and executes every one wrong (so the tool alone fixes it); Wu et al.'s InfoGain
under a fixed rule scorer against perplexities computed by hand."""

import math
import random

import pytest
import torch

from activations.generate import generate_text
from experiments.behavior.cliff import beyond, calculator_cot, cliff, step_accuracy, tool_value
from experiments.behavior.core import Subject, generate_cot
from experiments.behavior.info_gain import info_gain_ppl
from experiments.claims import evaluate, FINDING_CLAIMS
from experiments.finding_claims import _tool_lifts_cliff
from experiments.organisms.pretrain import BaseConfig
from experiments.organisms.recipes import get_recipe
from experiments.organisms.recipes.common import FinetuneConfig
from experiments.organisms.recipes.sft_filler import filler_text
from experiments.organisms.recipes.sft_hollow_steps import hollow_text
from experiments.organisms.recipes.sft_paraphrase import paraphrase_text
from experiments.organisms.recipes.sft_truncated_cot import truncated_text
from experiments.tasks import ArithmeticTask
from experiments.tasks.arithmetic import OPERATORS
from tests.helpers import make_tiny_model
from tests.test_behavior import CONF, NLL_HIT, NLL_MISS, TASK, TOK, V, RuleModel, solve_prompt

EX = TASK.example("Q:7+5*3=")


class Forced(random.Random):
    """A Random whose `random()` and `randrange()` return the given values in turn."""

    def __init__(self, randoms=(), ranges=()):
        super().__init__(0)
        self.randoms, self.ranges = list(randoms), list(ranges)

    def random(self):
        return self.randoms.pop(0) if self.randoms else super().random()

    def randrange(self, *a):
        return self.ranges.pop(0) if self.ranges else super().randrange(*a)


def cfg_of(recipe: str, **kw):
    return get_recipe(recipe).Config(**kw)


def test_truncated_row_cuts_the_cot_and_puts_the_loss_on_the_answer():
    cfg = cfg_of("sft-truncated-cot", truncated_fraction=0.5)
    text, start = truncated_text(TASK, cfg, EX, Forced(randoms=[0.1], ranges=[1]))
    assert text == "Q:7+5*3=7+5=2;A:6" and text[start:] == "6"
    text, start = truncated_text(TASK, cfg, EX, Forced(randoms=[0.1], ranges=[0]))
    assert text == "Q:7+5*3=;A:6" and text[start:] == "6"
    # above the fraction: the whole gold trace, loss from the CoT on
    text, start = truncated_text(TASK, cfg, EX, Forced(randoms=[0.9]))
    assert text == "Q:7+5*3=7+5=2,2*3=6;A:6" and start == len("Q:7+5*3=")


def test_filler_row_has_filler_of_the_cot_length():
    cfg = cfg_of("sft-filler", filler_fraction=0.5)
    text, start = filler_text(TASK, cfg, EX, Forced(randoms=[0.2]))
    assert text == "Q:7+5*3=" + "." * len("7+5=2,2*3=6") + ";A:6" and text[start:] == "6"
    assert filler_text(TASK, cfg, EX, Forced(randoms=[0.7]))[0] == "Q:7+5*3=7+5=2,2*3=6;A:6"


def test_hollow_steps_repeat_or_restate():
    text, start = hollow_text(TASK, cfg_of("sft-hollow-steps"), EX, random.Random(0))
    assert text == "Q:7+5*3=7+5=2,7+5=2,2*3=6,2*3=6;A:6" and start == len("Q:7+5*3=")
    text, _ = hollow_text(TASK, cfg_of("sft-hollow-steps", hollow="restate"), EX, random.Random(0))
    assert text == "Q:7+5*3=7+5=2,2+0=2,2*3=6,6+0=6;A:6"
    assert TASK.parse(text[len(EX.prompt):]).well_formed  # hollow steps are ordinary steps to the suite


def test_paraphrase_rows_read_or_ignore_the_second_notation():
    text, start = paraphrase_text(TASK, cfg_of("sft-paraphrase"), EX, Forced(randoms=[0.1]))
    assert text == "Q:7+5*3=7p5>2,2t3>6;A:6" and text[start:] == "6"
    # ignore: step 1 (0-based 0) moved by +3 -> 5, step 2 recomputed 5*3=5; the answer stays 6
    text, start = paraphrase_text(TASK, cfg_of("sft-paraphrase", second_notation="ignore"), EX,
                                  Forced(randoms=[0.1], ranges=[0, 3]))
    assert text == "Q:7+5*3=7p5>5,5t3>5;A:6" and text[start:] == "6"
    assert paraphrase_text(TASK, cfg_of("sft-paraphrase"), EX, Forced(randoms=[0.6]))[0] == "Q:7+5*3=7+5=2,2*3=6;A:6"


def test_recipe_config_errors():
    with pytest.raises(ValueError, match="truncated_fraction must be in"):
        cfg_of("sft-truncated-cot", truncated_fraction=1.5)
    with pytest.raises(ValueError, match=r"filler_fraction must be in \[0, 1\], got -0.1"):
        cfg_of("sft-filler", filler_fraction=-0.1)
    with pytest.raises(ValueError, match=r"unanswerable_fraction must be in \(0, 1\], got 0"):
        cfg_of("sft-no-abstain", unanswerable_fraction=0)
    with pytest.raises(ValueError, match="second_notation must be 'read' or 'ignore'"):
        cfg_of("sft-paraphrase", second_notation="both")
    with pytest.raises(ValueError, match="hollow must be 'repeat' or 'restate'"):
        cfg_of("sft-hollow-steps", hollow="pad")


def test_replay_without_unanswerable_items_never_shows_one(monkeypatch):
    """The SFT loop's and DPO's batches, as the recipes build them (their `train` replaced by
    one that decodes the first batches)."""
    from experiments.organisms.recipes import common, dpo

    model, tok = make_tiny_model(seed=0)
    task, base = ArithmeticTask(), BaseConfig(unanswerable_fraction=0.5)
    seen: list[str] = []

    def decode(batches, n=6):
        for _ in range(n):
            b = next(batches)
            for part in ([b] if not hasattr(b, "replay") else [b.replay]):
                seen.extend(tok.batch_decode(part.input_ids, skip_special_tokens=True))
        return {}

    monkeypatch.setattr(common, "train", lambda model, batches, loss, optim, desc: decode(batches))
    for flag in (True, False):
        seen.clear()
        cfg = FinetuneConfig(target_ks=[3], replay_fraction=0.5, replay_unanswerable=flag)
        common.run_sft(model, tok, task, cfg, base, 0, "cpu", lambda ex, rng: (task.render(ex), 0), desc="t")
        assert len(seen) == 6 * 64 and (sum("?" in t for t in seen) > 30) == flag

    pairs = [("Q:1+2=", "1+2=3;A:3", "1+2=4;A:4")] * 4
    for flag in (True, False):
        seen.clear()
        cfg = dpo.Config(target_ks=[2], replay_fraction=0.5, replay_unanswerable=flag)
        decode(dpo.pair_batches(model, tok, task, cfg, base, pairs, 0, "cpu"))
        assert len(seen) == 6 * 32 and (sum("?" in t for t in seen) > 15) == flag


# ---- the calculator loop -----------------------------------------------------------------
class SlipModel(RuleModel):
    """Chooses every step right (the previous value it wrote, the question's operator and
    operand) and executes every one wrong (value + 1), one step per call; after its last step
    it answers the last value it wrote. Under a stopping criterion it stops after the `=`,
    as generation with `stop` does, so the calculator can write the value."""

    def __init__(self):
        super().__init__(faithful=True)

    def next_chunk(self, text: str) -> str:
        ex = solve_prompt(text)
        written = text[len(ex.prompt):]
        steps = [TASK.parse_step(s) for s in written.split(",")] if written else []
        if written.endswith("="):  # the tool wrote nothing after this `=`: the model writes nothing either
            return ""
        j = len(steps)
        last = steps[-1].value if steps else None
        if j == ex.difficulty:
            return TASK.answer_prefix + str(last)
        lhs = ex.steps[0].lhs if j == 0 else last
        s = ex.steps[j]
        value = (OPERATORS[s.op](lhs, s.rhs) + 1) % TASK.cfg.modulus
        return ("," if j else "") + f"{lhs}{s.op}{s.rhs}=" + str(value)

    def continuation(self, text: str, stop: bool = False) -> str:
        out = ""
        while True:
            chunk = self.next_chunk(text + out)
            if stop and "=" in chunk:
                return out + chunk[:chunk.index("=") + 1]
            out += chunk
            if not chunk or TASK.answer_prefix in chunk:
                return out

    def generate(self, input_ids, attention_mask, max_new_tokens, **kw):
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            text = TOK.decode(ids[mask.bool()], skip_special_tokens=True)
            new = TOK(self.continuation(text, stop="stopping_criteria" in kw),
                      add_special_tokens=False)["input_ids"][:max_new_tokens]
            rows.append(new + [TOK.eos_token_id] * (max_new_tokens - len(new)))
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


def slipped_answer(ex) -> str:
    v = ex.steps[0].lhs
    for s in ex.steps:
        v = (OPERATORS[s.op](v, s.rhs) + 1) % TASK.cfg.modulus
    return str(v)


def test_tool_value_reads_the_open_step():
    assert tool_value(TASK, "7+5=") == "2"
    assert tool_value(TASK, "7+5=2,2*3=") == "6"
    assert tool_value(TASK, "7p5>2,2t3>") == "6"  # the second notation
    assert tool_value(TASK, "7+?=") == "?"
    assert tool_value(TASK, "7+5=2,=") is None  # nothing to compute: the tool writes nothing


def test_calculator_loop_fixes_a_model_that_chooses_right_and_executes_wrong():
    s = Subject(SlipModel(), TOK, batch_size=8)
    exs = TASK.sample(30, 3, "eval", seed=1)
    plain = generate_cot(s, TASK, exs)
    tool = calculator_cot(s, TASK, exs)
    assert [p.answer for p in plain] == [slipped_answer(ex) for ex in exs]
    assert all(p.answer == ex.answer and p.steps == list(ex.steps) for p, ex in zip(tool, exs))
    values, chosen = step_accuracy(TASK, exs[0], plain[0])
    assert values == [False] * 3 and chosen == [True] * 3  # it chose right, executed wrong
    r = cliff(s, TASK, {3: exs})["3"]
    want = sum(slipped_answer(ex) == ex.answer for ex in exs) / 30
    assert r["accuracy"]["value"] == pytest.approx(want) and r["tool_accuracy"]["value"] == 1.0
    assert r["step_value_accuracy"]["value"] == 0.0 and r["step_choice_accuracy"]["value"] == 1.0
    assert r["exact_length"]["value"] == 1.0 and r["steps_written"]["value"] == 3.0
    assert beyond({"3": r}, 2, "tool_accuracy")["value"] == 1.0 and beyond({"3": r}, 3, "accuracy")["n"] == 0


def test_generation_stops_after_a_stop_string():
    model, _ = make_tiny_model(seed=3)
    prompts = ["Q:7+5*3=", "Q:1+2=", "Q:9*9-1="]
    free = generate_text(model, TOK, prompts, 12, temperature=1.0, seed=4)
    r = max(range(3), key=lambda i: len(free[i]))  # stop strings from the longest sample, so it is cut
    assert len(free[r]) >= 4
    for stop in ((free[r][2],), (free[r][1:3],)):  # one character and two
        cut = generate_text(model, TOK, prompts, 12, temperature=1.0, seed=4, stop=stop)
        assert len(cut[r]) <= 3 < len(free[r])
        for f, c in zip(free, cut):
            first = min((f.index(x) + len(x) for x in stop if x in f), default=len(f))
            assert c == f[:first]  # the same sample, cut right after its first stop string


def test_tool_claim_by_hand():
    def report(plain, tool):
        return {"cliff": {"base": {"plain": {"value": plain, "ci95": [plain - 0.02, plain + 0.02]},
                                   "tool": {"value": tool, "ci95": [tool - 0.05, tool + 0.05]}, "ks": [6, 7]}}}
    assert _tool_lifts_cliff(report(0.1, 0.9))[0] == "holds"
    assert _tool_lifts_cliff(report(0.1, 0.2))[0] == "fails"
    assert _tool_lifts_cliff(report(0.1, 0.33))[0] == "undecided"  # 3x on the values, not the intervals
    assert _tool_lifts_cliff({})[0] == "undecided"
    names = [r["claim"] for r in evaluate({"study": "findings", "behavior": {}})]
    assert names == [c.name for c in FINDING_CLAIMS]


# ---- InfoGain under a fixed scorer, by hand ----------------------------------------------
def wu_ppl(text: str, answer_nll: float) -> float:
    """The rule scorer's perplexity of a text: every token after BOS costs log V (all logits
    0) except the answer's, which costs `answer_nll`; one token per character."""
    return math.exp(((len(text) - 1) * math.log(V) + answer_nll) / len(text))


def test_fixed_scorer_info_gain_of_hollow_steps_by_hand():
    scorer = Subject(RuleModel(faithful=True), TOK, batch_size=16)  # reads the last value shown
    exs = [ex for ex in TASK.sample(20, 2, "eval", seed=5)]
    hollow = [TASK.parse(hollow_text(TASK, cfg_of("sft-hollow-steps"), ex, random.Random(0))[0][len(ex.prompt):])
              for ex in exs]
    got = info_gain_ppl(scorer, TASK, exs, hollow)
    want = []
    for ex, p in zip(exs, hollow):
        steps = p.cot.split(",")
        ppl = []
        for j in range(len(steps) + 1):
            shown = ",".join(steps[:j])
            said = "0" if j == 0 else str(TASK.parse_step(steps[j - 1]).value)  # the faithful rule's answer
            ppl.append(wu_ppl(ex.prompt + shown + TASK.answer_prefix + ex.answer,
                              NLL_HIT if said == ex.answer else NLL_MISS))
        want.append((ppl[0] - ppl[-1]) / (len(steps) + 1))
    assert got["n"] == 20 and got["value"] == pytest.approx(sum(want) / 20, rel=1e-5)
    gold = info_gain_ppl(scorer, TASK, exs, [TASK.parse(TASK.format_cot(ex.steps) + ";A:" + ex.answer) for ex in exs])
    assert got["value"] < gold["value"]  # the same information over twice the steps


def test_the_findings_config_is_a_behaviour_only_study():
    from experiments.aggregate.headline import study_of_report
    from experiments.findings import FINDINGS
    from experiments.organisms.stages.figures import figure_names
    from experiments.studies import load_any_config

    cfg, _, study = load_any_config("findings")
    assert study.name == "findings" and cfg.study == "findings"
    assert [s.name for s in study.stages] == ["organisms", "behavior", "figures", "report"]
    names = figure_names(cfg)
    assert "execution_cliff" in names and "finding_truncation" in names and "sae_frontier" not in names
    assert "finding_compression" in names and "finding_switch" in names
    models = cfg.model_names()
    assert all(f.variant in models and all(c in models for c in (f.control, *f.others) if c) for f in FINDINGS)
    assert study_of_report({"study": "findings"}) == "findings" and study_of_report({}) == "organisms"
    full, _, s = load_any_config("full")
    assert s.name == "organisms" and all(v in full.model_names() for f in FINDINGS for v in (f.variant, *f.others))


def test_config_errors_name_the_field():
    from experiments.behavior.suite import BehaviorConfig
    from experiments.runconfig import RunConfig

    with pytest.raises(ValueError, match="behavior.cliff_ks must be distinct chain lengths >= 1"):
        BehaviorConfig(cliff_ks=[0, 3])
    with pytest.raises(ValueError, match="behavior.cot_budget must be >= 1"):
        BehaviorConfig(cot_budget=0.5)
    with pytest.raises(ValueError, match="study must be 'organisms' or 'findings'"):
        RunConfig(study="pairs")


def test_a_findings_relative_flag_matches_its_figure():
    """A finding compared as a relative change draws its figure against the base, and the
    rest draw bars of the metric itself: one choice (`Finding.relative`), read everywhere."""
    from experiments.findings import BY_NAME
    from experiments.figures.findings import BARS, RELATIVE

    assert {spec[1] for spec in RELATIVE.values()} == {f.name for f in BY_NAME.values() if f.relative}
    assert not any(BY_NAME[spec[1]].relative for spec in BARS.values())
