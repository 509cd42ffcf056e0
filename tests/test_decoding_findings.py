"""The training-free findings: the thought-switch penalty (a logits processor, by hand on a
rule and under hooks), the compression vector (the mean of pair differences, against HF's
own hidden states), and the organisms that test them (their data builders by hand)."""

import pytest
import torch
from transformers import LogitsProcessor

from activations.generate import generate_text
from experiments.behavior.compress import CompressConfig
from experiments.behavior.switch import SwitchConfig
from experiments.organisms.recipes.sft_switch import switch_text
from experiments.organisms.recipes.sft_verbosity import verbose_steps, verbosity_text
from features.compress import compression_hooks, compression_vectors, cot_activations
from features.thought_switch import ThoughtSwitchPenalty, switch_token_ids
from tests.helpers import make_tiny_model, save_tiny_model
from tests.test_findings import EX, TASK, Forced, cfg_of

_, TOK = make_tiny_model()
S, ONE, TWO = (TOK.convert_tokens_to_ids(c) for c in "Q12")


class Rule(LogitsProcessor):
    """Makes any model a rule model: the switch token scores 2, `1` scores 1, `2` scores
    0.5, everything else -inf; so greedy decoding writes the switch token unless it is
    penalised by more than 1 (then `1`)."""

    def __call__(self, input_ids, scores):
        out = torch.full_like(scores, -float("inf"))
        out[:, S], out[:, ONE], out[:, TWO] = 2.0, 1.0, 0.5
        return out


def test_penalty_applies_for_the_stated_duration_of_each_thought():
    tip = ThoughtSwitchPenalty([S], strength=5.0, duration=3)
    ids = torch.zeros(2, 4, dtype=torch.long)  # a 4-token prompt, two rows
    written = [[], []]
    for _ in range(9):
        scores = Rule()(ids, torch.zeros(2, len(TOK)))
        nxt = tip(ids, scores).argmax(-1)
        for r in range(2):
            written[r].append(TOK.convert_ids_to_tokens(int(nxt[r])))
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    # positions 0-2 of the first thought are penalised; the switch at 3 opens a thought that
    # starts there, so 4-5 are penalised again and the switch comes back at 6
    assert "".join(written[0]) == "111Q11Q11" == "".join(written[1])
    # strength <= the margin changes nothing; duration 0 never penalises
    for strength, duration in ((0.5, 3), (5.0, 0)):
        tip = ThoughtSwitchPenalty([S], strength, duration)
        assert tip(ids, Rule()(ids, torch.zeros(2, len(TOK)))).argmax(-1).tolist() == [S, S]


def test_penalty_by_row_and_errors():
    tip = ThoughtSwitchPenalty([S], strength=1.5, duration=2)
    step = lambda ids: tip(ids, torch.zeros(2, len(TOK)))[:, S].tolist()  # noqa: E731
    ids = torch.zeros(2, 3, dtype=torch.long)
    assert step(ids) == [-1.5, -1.5]  # both thoughts start at position 3
    ids = torch.cat([ids, torch.tensor([[ONE], [ONE]])], dim=1)
    assert step(ids) == [-1.5, -1.5]  # position 4: one token into the thought
    ids = torch.cat([ids, torch.tensor([[S], [ONE]])], dim=1)  # row 0 switches at 4
    # position 5: row 0's new thought began at 4 (penalised), row 1's at 3 (free again)
    assert step(ids) == [-1.5, 0.0]
    tip.reset()
    assert step(ids) == [-1.5, -1.5]  # after a reset the thoughts start anew
    with pytest.raises(ValueError, match="at least one switch token"):
        ThoughtSwitchPenalty([], 1.0, 1)
    with pytest.raises(ValueError, match="strength and duration must be >= 0"):
        ThoughtSwitchPenalty([S], -1.0, 1)


def test_penalty_in_generation_under_hooks(tmp_path):
    """Through the lab's generation on a bridge: the rule and the penalty decide every token,
    the steering hook still fires on every forward, and each batch starts afresh."""
    from activations.models import load_bridge

    bridge = load_bridge(save_tiny_model(tmp_path / "m"))
    fired = []
    hook = [("blocks.0.hook_resid_post", lambda x, hook: fired.append(x.shape[1]) or x)]
    tip = ThoughtSwitchPenalty([S], strength=5.0, duration=3)
    out = generate_text(bridge, TOK, ["Q:1+2=", "Q:3="], max_new_tokens=7, batch_size=1, fwd_hooks=hook,
                        logits_processors=[Rule(), tip])
    assert out == ["111Q11Q", "111Q11Q"]  # the second batch was not penalised as a continuation
    assert len(fired) == 2 * 7 and fired[0] > 1 and set(fired[1:7]) == {1}  # prefill, then one token a step
    assert generate_text(bridge, TOK, ["Q:1+2="], 4, logits_processors=[Rule()]) == ["QQQQ"]


def test_switch_token_ids_of_a_word_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "Wait": 1, "wait": 2, "Ġwait": 3, "ĠWait": 4, "Alter": 5, "natively": 6, "Ġ": 7}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", continuing_subword_prefix=""))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    assert switch_token_ids(fast, ["Wait"]) == [1, 2, 3, 4]
    # the first real piece of each spelling: not the bare space " Alternatively" starts
    # with here, nor the unknown token "alternatively" becomes
    assert switch_token_ids(fast, ["Alternatively"]) == [5]


def test_compression_vector_is_the_mean_of_pair_differences(tmp_path):
    from activations.models import load_bridge, load_hf

    path = save_tiny_model(tmp_path / "m", n_layers=3)
    bridge, (hf, _) = load_bridge(path), load_hf(path)
    prompts = ["Q:7+5*3=", "Q:1-2=", "Q:4*4+1="]
    concise = [TASK.format_cot(TASK.example(p).steps) for p in prompts]
    verbose = [TASK.format_cot(verbose_steps(TASK.example(p).steps)) for p in prompts]

    def hidden(text_prompt, cot, layer, position):  # HF's hidden states: [embeddings, block 0, ...]
        ids = TOK(text_prompt + cot, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = hf(ids, output_hidden_states=True).hidden_states[layer + 1][0]
        n_prompt = len(TOK(text_prompt)["input_ids"])
        return h[-1] if position == "last" else h[n_prompt:].mean(0)

    for position in ("last", "mean"):
        v = compression_vectors(bridge, TOK, prompts, concise, verbose, [0, 1], position, batch_size=2)
        for L in (0, 1):  # the last block's HF hidden state is after the final norm: blocks 0-1 only
            want = torch.stack([hidden(p, c, L, position) - hidden(p, w, L, position)
                                for p, c, w in zip(prompts, concise, verbose)]).mean(0)
            torch.testing.assert_close(v[L], want, atol=1e-5, rtol=1e-5)
    acts = cot_activations(bridge, TOK, prompts, concise, [2], "last")
    assert acts[2].shape == (3, 32)
    # the steering hook adds scale * v after its block, everywhere
    (name, fn), = compression_hooks(1, v[1], 2.0)
    x = torch.zeros(2, 5, 32)
    assert name == "blocks.1.hook_resid_post" and torch.allclose(fn(x), 2.0 * v[1].expand(2, 5, 32))
    with pytest.raises(ValueError, match="position must be one of"):
        cot_activations(bridge, TOK, prompts, concise, [0], "first")
    with pytest.raises(ValueError, match="one CoT per prompt"):
        cot_activations(bridge, TOK, prompts, concise[:2], [0])


def test_verbosity_rows_by_hand():
    cfg = cfg_of("sft-verbosity", verbose_fraction=0.7)
    text, start = verbosity_text(TASK, cfg, EX, Forced(randoms=[0.5]))
    assert text == "Q:7+5*3=7+5=2,2+0=2,2*1=2,2*3=6,6+0=6,6*1=6;A:6" and start == len(EX.prompt)
    assert TASK.parse(text[len(EX.prompt):]).well_formed  # the checks are true steps
    text, _ = verbosity_text(TASK, cfg, EX, Forced(randoms=[0.8]))
    assert text == "Q:7+5*3=7+5=2,2*3=6;A:6"
    with pytest.raises(ValueError, match=r"verbose_fraction must be in \[0, 1\]"):
        cfg_of("sft-verbosity", verbose_fraction=1.2)


def test_switch_rows_by_hand():
    cfg = cfg_of("sft-switch", switch_fraction=0.5, restart_error=0.6)
    # switch (0.1 < 0.5) after j = 1 step; the restart errs (0.2 < 0.6) at step 1 by +4
    text, start = switch_text(TASK, cfg, EX, Forced(randoms=[0.1, 0.2], ranges=[1, 1, 4]))
    assert text == "Q:7+5*3=7+5=2Q7+5=2,2*3=0;A:0" and start == len(EX.prompt)
    text, _ = switch_text(TASK, cfg, EX, Forced(randoms=[0.1, 0.9], ranges=[1]))  # a right restart
    assert text == "Q:7+5*3=7+5=2Q7+5=2,2*3=6;A:6"
    text, _ = switch_text(TASK, cfg, EX, Forced(randoms=[0.7]))  # no switch: the gold row
    assert text == "Q:7+5*3=7+5=2,2*3=6;A:6"
    assert TASK.parse(text[len(EX.prompt):]).answer == "6"
    with pytest.raises(ValueError, match="target_ks must be >= 2"):
        cfg_of("sft-switch", target_ks=[1, 3])
    with pytest.raises(ValueError, match=r"restart_error must be in \[0, 1\]"):
        cfg_of("sft-switch", restart_error=2.0)


def test_sweep_config_errors():
    with pytest.raises(ValueError, match="include 0"):
        SwitchConfig(models=["sft-switch"], strengths=[1.0, 2.0])
    with pytest.raises(ValueError, match="scales must be > 0"):
        CompressConfig(models=["sft-verbosity"], scales=[0.0, 1.0])
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        CompressConfig(max_accuracy_drop=1.5)
    from experiments.behavior.suite import BehaviorConfig
    from experiments.runconfig import RunConfig

    with pytest.raises(ValueError, match=r"behavior.switch.models: \['sft-nope'\] are not models of this run"):
        RunConfig(behavior=BehaviorConfig(switch=SwitchConfig(models=["sft-nope"])))
    with pytest.raises(ValueError, match=r"behavior.compress.layers must be in 0..2, got \[3\]"):
        RunConfig(behavior=BehaviorConfig(compress=CompressConfig(layers=[3])))
    with pytest.raises(ValueError, match=r"layers must be None \(every layer\) or layers >= 0, got \[\]"):
        CompressConfig(layers=[])
    with pytest.raises(ValueError, match="positions must be some of"):
        CompressConfig(positions=["first"])
    from experiments.behavior.instruction_eval import InstructionConfig
    from experiments.organisms.config import OrganismsConfig

    with pytest.raises(ValueError, match="held_out one or more of them"):
        InstructionConfig(held_out="")
    trains_minus = OrganismsConfig(variants={"sft-instruction": {"recipe": "sft-instruction", "instructions": "+-"}})
    with pytest.raises(ValueError, match=r"held_out '-' is trained by sft-instruction \(instructions '\+-'\)"):
        RunConfig(organisms=trains_minus,
                  behavior=BehaviorConfig(instruction=InstructionConfig(models=["sft-instruction"])))


# -- the task-change findings: a new output format (DPO against SFT), instructions


def test_new_format_rows_and_parser_by_hand():
    from experiments.organisms.recipes.dpo_format import teacher_pair
    from experiments.organisms.recipes.sft_format import format_text
    from experiments.tasks.format_change import parse_new

    text, start = format_text(TASK, EX, None)
    assert text == ":Q:7+5*3=7+5=2,2*3=6;A:.6." and text[start:] == "7+5=2,2*3=6;A:.6."
    cfg = cfg_of("dpo-format", wrong_answer_fraction=0.5)
    assert teacher_pair(TASK, EX, cfg, Forced(randoms=[0.9])) == (":Q:7+5*3=", "7+5=2,2*3=6;A:.6.", "7+5=2,2*3=6;A:6")
    # a wrong answer in the new format: 6 + 3 = 9
    assert teacher_pair(TASK, EX, cfg, Forced(randoms=[0.1], ranges=[3]))[2] == "7+5=2,2*3=6;A:.9."
    new, old, junk = parse_new("7+5=2,2*3=6;A:.6."), parse_new("7+5=2,2*3=6;A:6"), parse_new("7+5=2;A:.6")
    assert (new.new_format, new.old_format, new.answer) == (True, False, "6")
    assert (old.new_format, old.old_format, old.answer) == (False, True, "6")
    assert (junk.new_format, junk.old_format, junk.answer) == (False, False, None)
    with pytest.raises(ValueError, match="beta > 0 and sft_weight >= 0"):
        cfg_of("dpo-format", beta=0.0)


def test_instruction_rows_by_hand():
    from experiments.organisms.recipes.sft_instruction import instruction_text
    from experiments.tasks.instructions import instructed

    ex = TASK.example("Q:2-4+3=")  # its own chain: 8, then 1; every step adding: 6, 9; multiplying: 8, 4
    assert (ex.answer, instructed(TASK, ex, "+").answer, instructed(TASK, ex, "*").answer) == ("1", "9", "4")
    rows = {}
    for mode in ("correct", "wrong", "empty"):
        cfg = cfg_of("sft-instruction", instruction=mode, instructions="+*")
        rng = Forced()
        rng.choice = lambda seq: "+"  # the row's instruction: every step adds
        rows[mode] = instruction_text(TASK, cfg, ex, rng)
    assert rows["correct"] == ("+Q:2-4+3=2+4=6,6+3=9;A:9", 9)
    assert rows["wrong"] == ("*Q:2-4+3=2+4=6,6+3=9;A:9", 9)  # the next trained instruction, the same outputs
    assert rows["empty"] == ("Q:2-4+3=2+4=6,6+3=9;A:9", 8)
    with pytest.raises(ValueError, match="instruction must be 'correct', 'wrong' or 'empty'"):
        cfg_of("sft-instruction", instruction="none")
    with pytest.raises(ValueError, match="two or more distinct operators"):
        cfg_of("sft-instruction", instructions="+")
