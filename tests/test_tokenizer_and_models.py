"""Tokenizer round trips; save/load of organisms through HF and TransformerLens."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from activations.models import load_bridge, load_hf
from experiments.organisms.tokenizer import CHARS, build_tokenizer
from experiments.tasks import ArithmeticTask, token_labels
from experiments.tasks.protocol import ROLE_ANSWER, ROLE_PADDING, ROLE_QUESTION, ROLE_STEP
from tests.helpers import make_tiny_model

TEXTS = ["Q:7+5*3-4=7+5=2,2*3=6,6-4=2;A:2", "Q:1?=...;A:?", "Q:3p4>7;A:7"]


def test_tokenizer_round_trip_one_token_per_char(tmp_path):
    tok = build_tokenizer()
    for text in TEXTS:
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1
        assert tok.decode(ids, skip_special_tokens=True) == text
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert [again(t)["input_ids"] for t in TEXTS] == [tok(t)["input_ids"] for t in TEXTS]
    assert len(again) == 4 + len(CHARS)
    assert tok("x")["input_ids"] == [tok.bos_token_id, tok.unk_token_id]
    with pytest.raises(ValueError, match="distinct"):
        build_tokenizer("00")


def test_token_labels_map_bos_eos_and_padding():
    tok, task = build_tokenizer(), ArithmeticTask()
    texts = ["Q:1+2=1+2=3;A:3", "Q:4=;A:4"]
    enc = tok([t + tok.eos_token for t in texts], padding=True, return_offsets_mapping=True,
              return_special_tokens_mask=True, return_tensors="np")
    lab = token_labels(task, texts, enc["offset_mapping"], enc["special_tokens_mask"], enc["attention_mask"])
    role = lab["role"]
    assert role[0, 0] == ROLE_QUESTION and role[0, -1] == ROLE_ANSWER          # BOS, EOS
    assert list(role[0, 1:7]) == [ROLE_QUESTION] * 6 and list(role[0, 7:12]) == [ROLE_STEP] * 5
    assert list(role[1]) == [ROLE_QUESTION] * 5 + [ROLE_ANSWER] * 5 + [ROLE_PADDING] * 7
    # Token t is character t-1: token labels equal the character labels, shifted by BOS.
    chars = task.char_labels(texts[0])
    assert np.array_equal(lab["value"][0, 1:len(texts[0]) + 1], chars.value)
    assert np.array_equal(lab["slot"][0, 1:len(texts[0]) + 1], chars.slot)


def test_save_load_hf_and_bridge_logits_match(tmp_path):
    model, tok = make_tiny_model()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    ids = torch.tensor([tok(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        ref = model(ids).logits
        hf, _ = load_hf(str(tmp_path))
        auto = AutoModelForCausalLM.from_pretrained(tmp_path)
        bridge = load_bridge(str(tmp_path))
        got_bridge = bridge(ids)
    assert torch.allclose(hf(ids).logits, ref, atol=1e-6)
    assert torch.allclose(auto(ids).logits, ref, atol=1e-6)
    assert (got_bridge - ref).abs().max() < 1e-4
    # TransformerLens tokenises strings the same way (BOS once, one token per character).
    assert bridge.to_tokens(TEXTS[0]).tolist() == ids.tolist()
    _, cache = bridge.run_with_cache(ids, names_filter=["blocks.1.hook_resid_post"])
    assert cache["blocks.1.hook_resid_post"].shape == (1, ids.shape[1], 32)
