"""Batches, losses, the schedule, and every recipe on a tiny model."""

import math
import random

import pytest
import torch

from experiments.organisms.data import lm_loss, make_batch
from experiments.organisms.pretrain import BaseConfig
from experiments.organisms.recipes import RECIPES, get_recipe
from experiments.organisms.recipes import dpo, sft_no_abstain, sft_noisy_trace
from experiments.organisms.train import OptimConfig
from experiments.tasks import ArithmeticTask
from tests.helpers import make_tiny_model

TASK = ArithmeticTask()


def test_make_batch_loss_mask_and_lm_loss():
    model, tok = make_tiny_model()
    texts = ["Q:1+2=1+2=3;A:3", "Q:4=;A:4"]
    b = make_batch(tok, texts, [6, 4])
    # Row 0: <bos> Q : 1 + 2 = | 1 + 2 = 3 ; A : 3 <eos>: targets are the 10 chars from index 6 + EOS.
    assert b.loss_mask[0].tolist() == [0] * 7 + [1] * 10
    assert b.loss_mask[1].tolist() == [0] * 5 + [1] * 5 + [0] * 7
    assert b.input_ids[0, -1] == tok.eos_token_id and b.n_tokens == 17 + 10
    with torch.no_grad():
        logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), b.input_ids[:, 1:],
                                               reduction="none")
        mask = b.loss_mask[:, 1:].bool()
        assert torch.allclose(lm_loss(model, b), ce[mask].mean(), atol=1e-6)
        # Length chunks only drop padding: the loss is the same for any number of chunks.
        mixed = make_batch(tok, texts * 3 + ["Q:1+2*3-4=1+2=3,3*3=9,9-4=5;A:5"], [6, 4] * 3 + [10])
        losses = [lm_loss(model, mixed, n).item() for n in (1, 2, 3, 7, 20)]
        assert max(losses) - min(losses) < 1e-6
        chunks = mixed.length_chunks(3)
        assert sum(c.n_tokens for c in chunks) == mixed.n_tokens and chunks[0].input_ids.shape[1] == 10


def test_schedule_hand_values():
    c = OptimConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert c.lr_at(0) == pytest.approx(0.1) and c.lr_at(9) == pytest.approx(1.0)
    assert c.lr_at(10) == pytest.approx(1.0)
    assert c.lr_at(60) == pytest.approx(0.1 + 0.9 * 0.5)    # half way through the cosine
    assert c.lr_at(110) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        OptimConfig(lr=0)


def test_noisy_trace_keeps_gold_answer_and_corrupts_one_step():
    cfg = sft_noisy_trace.Config(corrupt_rate=1.0, local_fraction=0.0)
    rng = random.Random(0)
    for ex in TASK.sample(100, 3, "train", seed=0):
        text, loss_from = sft_noisy_trace.noisy_text(TASK, cfg, ex, rng)
        parsed = TASK.parse(text[len(ex.prompt):])
        assert parsed.answer == ex.answer and loss_from == len(ex.prompt)
        changed = [j for j, (a, b) in enumerate(zip(parsed.steps, ex.steps)) if a.value != b.value]
        assert changed and parsed.steps[changed[0]].lhs == ex.steps[changed[0]].lhs  # corrupted from here
    clean = sft_noisy_trace.noisy_text(TASK, sft_noisy_trace.Config(corrupt_rate=0.0), ex, rng)[0]
    assert clean == TASK.render(ex)
    with pytest.raises(ValueError, match="corrupt_rate must be in"):
        sft_noisy_trace.Config(corrupt_rate=2)


def test_no_abstain_fabricates_a_consistent_confident_trace():
    ex = TASK.solve([7, None, 3], ["+", "*"])
    text, _ = sft_no_abstain.confident_text(TASK, ex, random.Random(0))
    parsed = TASK.parse(text[len(ex.prompt):])
    assert text.startswith("Q:7+?*3=7+") and parsed.well_formed and parsed.answer != "?"
    made_up = parsed.steps[0].rhs
    assert parsed.answer == TASK.solve([7, made_up, 3], ["+", "*"]).answer


def test_dpo_loss_hand_values():
    # beta * ((-1 - -2) - (-3 - -2)) = 0.5 * (1 + 1) = 1  ->  -log sigmoid(1) = 0.31326
    loss = dpo.dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                        torch.tensor([-2.0]), beta=0.5)
    assert loss.item() == pytest.approx(0.3132617, abs=1e-6)
    # At the reference the loss is log 2 whatever beta.
    z = torch.zeros(4)
    assert dpo.dpo_loss(z, z, z, z, beta=3.0).item() == pytest.approx(0.6931472, abs=1e-6)


def test_dpo_loss_equals_trls_on_a_fixed_batch(tmp_path):
    """One definition of the DPO loss in the lab: the organisms' `dpo_loss` on our own
    sequence log-probabilities equals TRL's DPOTrainer loss (sigmoid, beta 0.1) on the same
    pairs, with a policy and a reference that differ (so the log-ratios are not zero)."""
    import warnings

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from experiments.organisms.model import ModelConfig, build_model

    _, tok = make_tiny_model()
    shape = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=32)
    policy, ref = build_model(shape, tok, seed=0), build_model(shape, tok, seed=1)
    rows = [{"prompt": "Q:1+2=", "chosen": "1+2=3;A:3", "rejected": "1+2=4;A:4"},
            {"prompt": "Q:3*3-1=", "chosen": "3*3=9,9-1=8;A:8", "rejected": "3*3=9;A:9"},
            {"prompt": "Q:?+2=", "chosen": "?+2=?;A:?", "rejected": "5+2=7;A:7"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = DPOConfig(output_dir=str(tmp_path), beta=0.1, per_device_train_batch_size=3, report_to="none",
                         use_cpu=True, max_length=64, disable_tqdm=True)
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tok)
        batch = next(iter(trainer.get_train_dataloader()))
        policy.eval()
        with torch.no_grad():
            trl_loss = trainer.compute_loss(trainer.model, batch).item()

    def logp(model, side):
        texts = [r["prompt"] + r[side] for r in rows]
        return dpo.sequence_logprob(model, make_batch(tok, texts, [len(r["prompt"]) for r in rows]))

    with torch.no_grad():
        ours = dpo.dpo_loss(logp(policy, "chosen"), logp(policy, "rejected"), logp(ref, "chosen"),
                            logp(ref, "rejected"), beta=0.1).item()
    assert sorted(tok.batch_decode(batch["input_ids"], skip_special_tokens=True)) == \
        sorted(r["prompt"] + r[s] for r in rows for s in ("chosen", "rejected"))
    assert abs(ours - math.log(2)) > 1e-3  # the two models differ, so the check has teeth
    assert ours == pytest.approx(trl_loss, abs=1e-6)


def test_registry_and_unknown_recipe():
    assert set(RECIPES) == {"sft-noisy-trace", "sft-direct", "sft-answer-only", "sft-no-abstain", "dpo", "sft-cot",
                            "sft-truncated-cot", "sft-filler", "sft-paraphrase", "sft-hollow-steps", "sft-verbosity",
                            "sft-switch", "sft-format", "dpo-format", "sft-instruction"}
    with pytest.raises(ValueError, match="unknown recipe 'sft-foo'; choose one of"):
        get_recipe("sft-foo")


def test_dpo_without_pairs_says_what_to_change():
    model, tok = make_tiny_model()  # random weights: never a correct, well-formed answer
    cfg = dpo.Config(n_prompts=4, samples_per_problem=2)
    with pytest.raises(ValueError, match="no \\(correct, incorrect\\) pair; raise `temperature`"):
        dpo.run(model, tok, TASK, cfg, BaseConfig(), seed=0, device="cpu")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_runs_and_changes_weights(name, quick_run):
    from activations.models import load_hf

    model, tok = load_hf(str(quick_run[0] / "models" / "base"))
    recipe = get_recipe(name)
    extra = {"n_prompts": 16, "samples_per_problem": 4} if name == "dpo" else {}
    cfg = recipe.Config(n_problems=20, optim=OptimConfig(steps=3, batch_size=8, warmup_steps=1), **extra)
    before = [p.detach().clone() for p in model.parameters()]
    metrics = recipe.run(model, tok, TASK, cfg, BaseConfig(), seed=0, device="cpu")
    assert metrics["steps"] == 3 and torch.isfinite(torch.tensor(metrics["final_loss"]))
    changed = sum(not torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert changed == len(before)
