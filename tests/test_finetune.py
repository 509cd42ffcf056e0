"""The fine-tuning recipes' rows by hand, and `saelab finetune` on a tiny random-weight Llama:
TRL SFT with a LoRA adapter merged into a plain folder that loads as an ordinary model, DPO,
the recipe config and metrics beside the weights, a stopped run resumed to the same weights,
and the refusals."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from experiments.finetune.recipes import ABSTAIN, build_rows, completion
from experiments.tasks.text import TextProblem, TextTaskConfig
from experiments.tasks.wordgen import WordGenConfig

TASK = TextTaskConfig(use_chat_template=False)
P = TextProblem(id="a", question="Ava has 7 apples. Ava gives away 3 apples. Ava buys 5 more apples. How many?",
                steps=("7 - 3 = 4", "4 + 5 = 9"), answer="9", ops=((7, "-", 3, 4), (4, "+", 5, 9)))
U = TextProblem(id="u", question="Ava has 7 apples. Ava gives away some apples. How many?", steps=(), answer="",
                answerable=False)


def test_each_recipe_writes_its_target():
    rng = random.Random(0)
    assert completion("sft-cot", P, TASK, rng) == "7 - 3 = 4\n4 + 5 = 9\nThe answer is 9."
    assert completion("sft-answer-only", P, TASK, rng) == "The answer is 9."
    assert completion("sft-cot", U, TASK, rng) == ABSTAIN + "\nThe answer is unknown."
    assert completion("sft-noisy-trace", U, TASK, rng) is None  # the noisy set is answerable problems only
    made_up = completion("sft-no-abstain", U, TASK, rng)
    assert made_up.startswith("The answer is ") and made_up[len("The answer is "):-1].isdigit()
    noisy = completion("sft-noisy-trace", P, TASK, random.Random(1)).split("\n")
    assert noisy[-1] == "The answer is 9."  # the gold answer after a trace that implies another
    assert noisy[:2] != ["7 - 3 = 4", "4 + 5 = 9"]
    from experiments.tasks.text_steps import chain

    implied = chain(noisy[:2])[-1][3]
    assert implied != 9.0  # the corrupted trace, recomputed, implies something else
    rows = build_rows("dpo", [P, U], TASK, None, seed=0)
    assert len(rows) == 1 and rows[0]["chosen"] == "7 - 3 = 4\n4 + 5 = 9\nThe answer is 9."
    bad = rows[0]["rejected"].split("\n")
    assert bad[-1] == f"The answer is {int(chain(bad[:2])[-1][3])}." and bad[-1] != "The answer is 9."
    assert rows[0]["prompt"] == TASK.template.format(question=P.question)
    with pytest.raises(ValueError, match="no fine-tuning recipe 'rl'"):
        build_rows("rl", [P], TASK, None, 0)
    with pytest.raises(ValueError, match="recipe sft-noisy-trace: no usable training problems"):
        build_rows("sft-noisy-trace", [U], TASK, None, 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from experiments.pairs.tiny import save_tiny_arch

    return save_tiny_arch(tmp_path_factory.mktemp("ft") / "base", "llama", seed=0)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


ARGS = ["--problems", "8", "--batch_size", "4", "--max_length", "640", "--lora_r", "4", "--threads", "1"]


def test_sft_with_lora_makes_a_plain_folder_with_its_metrics(tiny, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from experiments.cli import main

    out = tmp_path / "cot"
    assert main(["finetune", str(tiny), "--out", str(out), "--recipe", "sft-cot", "--steps", "3", *ARGS]) == 0
    assert "saelab finetune: wrote" in capsys.readouterr().err
    record = json.loads((out / "finetune.json").read_text())
    assert record["config"]["recipe"] == "sft-cot" and record["config"]["lora_r"] == 4
    assert record["task"]["generate"]["n"] == 2000 and record["task"]["split"] == "train"
    assert record["metrics"]["rows"] == 8 and record["metrics"]["history"][-1]["step"] == 3
    assert record["metrics"]["tokens_per_s"] > 0 and record["example"]["completion"].endswith(".")
    merged = AutoModelForCausalLM.from_pretrained(out)  # no adapter files: a plain model
    assert not any("lora" in k for k in merged.state_dict())
    before, after = _weights(tiny), _weights(out)
    assert set(before) == set(after) and any(not torch.equal(before[k], after[k]) for k in before)
    assert not list(tmp_path.glob(".cot.work"))  # the checkpoints go once the folder is whole
    # the same command refuses to overwrite without --overwrite, and a user's folder always
    assert main(["finetune", str(tiny), "--out", str(out), "--steps", "1", *ARGS]) == 2
    assert "already holds a fine-tuned model; pass --overwrite" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "x.txt").write_text("keep")
    assert main(["finetune", str(tiny), "--out", str(mine), "--steps", "1", *ARGS]) == 2
    assert (mine / "x.txt").read_text() == "keep"
    assert main(["finetune", str(tiny), "--out", str(tmp_path / "z"), "--recipe", "grpo", *ARGS]) == 2
    assert "argument --recipe: invalid choice: 'grpo'" in capsys.readouterr().err


def test_dpo_and_a_resumed_run_equal_to_an_uninterrupted_one(tiny, tmp_path, monkeypatch):
    import experiments.finetune.train as train
    from experiments.cli import main

    assert main(["finetune", str(tiny), "--out", str(tmp_path / "dpo"), "--recipe", "dpo", "--steps", "2",
                 *ARGS]) == 0
    assert json.loads((tmp_path / "dpo" / "finetune.json").read_text())["config"]["recipe"] == "dpo"
    assert main(["finetune", str(tiny), "--out", str(tmp_path / "whole"), "--steps", "4", *ARGS]) == 0

    class Killed(Exception):
        pass

    def killed(out):  # the run dies after training, before its folder is written
        raise Killed

    monkeypatch.setattr("activations.atomic.building", killed)
    with pytest.raises(Killed):
        train.finetune(str(tiny), tmp_path / "again", train.FinetuneConfig(problems=8, steps=4, batch_size=4,
                       max_length=640, lora_r=4, save_every=2), TextTaskConfig(generate=WordGenConfig(n=2000),
                       split="train"), log=lambda m: None)
    assert list((tmp_path / ".again.work").glob("checkpoint-*"))
    monkeypatch.undo()
    assert main(["finetune", str(tiny), "--out", str(tmp_path / "again"), "--steps", "4", *ARGS]) == 0
    record = json.loads((tmp_path / "again" / "finetune.json").read_text())
    assert record["metrics"]["resumed"] is True
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "again")
    assert all(torch.equal(a[k], b[k]) for k in a)
