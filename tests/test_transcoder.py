"""The TopK transcoder: learns a sparse linear MLP stand-in, round-trips through SAELens'
loader, refuses a bad config, and trains from a tiny activation cache (resid_mid -> mlp_out)."""

import json

import pytest
import torch

from sae.transcoder import (TranscoderConfig, fvu, load_transcoder, save_transcoder, shuffled_pairs, train_transcoder,
                            train_transcoder_on)

D_IN, D_OUT, N_DIRS = 16, 12, 64


def sparse_linear(seed: int, b: int = 256):
    """An endless iterator of (x (b, 16), y = x @ A (b, 12)): x a sparse nonnegative mix of 64
    random unit directions (each on with probability 2/64, magnitude U(0.5, 1.5)) plus an
    offset of 0.5, A a random linear map."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(N_DIRS, D_IN, generator=g), dim=-1)
    a_map = torch.randn(D_IN, D_OUT, generator=g) / D_IN ** 0.5
    while True:
        a = (torch.rand(b, N_DIRS, generator=g) < 2 / N_DIRS) * (0.5 + torch.rand(b, N_DIRS, generator=g))
        x = a @ dirs + 0.5
        yield x, x @ a_map


CFG = dict(expansion=4, k=6, steps=1500, batch_size=256, lr=3e-3, norm_batches=5)


@pytest.fixture(scope="module")
def trained():
    return train_transcoder_on(sparse_linear(0), D_IN, D_OUT, TranscoderConfig(**CFG))


def test_learns_a_sparse_linear_map(trained):
    tc, m = trained
    # Measured with seeds 0-3: fvu 0.017-0.037 (threshold, the saved model), fvu_topk
    # 0.033-0.046, l0 5.7-6.1, dead 0-2%, in ~1 s each; 0.1 leaves ~3x margin.
    assert m["fvu"] < 0.1 and m["fvu_topk"] < 0.1
    assert CFG["k"] / 1.5 <= m["l0"] <= CFG["k"] * 1.5  # the calibrated threshold keeps ~k per row
    assert m["dead_fraction"] < 0.25
    x, y = next(sparse_linear(5))  # other directions: only checks that the mode switch works
    assert ((tc.encode(x, topk=True) > 0).sum(-1) <= CFG["k"]).all()


def test_save_load_round_trip_matches(trained, tmp_path):
    tc, m = trained
    save_transcoder(tc, tmp_path / "tc", {"hook_name": "x", "hook_name_out": "y"}, TranscoderConfig(**CFG), m)
    sl = load_transcoder(tmp_path / "tc")
    from sae_lens import SAE, JumpReLUTranscoder

    assert isinstance(sl, JumpReLUTranscoder)
    assert isinstance(SAE.load_from_disk(str(tmp_path / "tc")), JumpReLUTranscoder)
    assert sl.cfg.metadata.hook_name_out == "y" and sl.cfg.metadata.k == CFG["k"]
    g = torch.Generator().manual_seed(123)
    it = sparse_linear(0)  # same directions and map, fresh rows (the generator moves on)
    for _ in range(3):
        next(it)
    x, y = next(it)
    x = x + 0.01 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        f_ours, f_sl = tc.encode(x), sl.encode(x)
        torch.testing.assert_close(f_sl, f_ours, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sl.decode(f_sl), tc.decode(f_ours), atol=1e-5, rtol=1e-5)
        assert fvu(y, sl.decode(f_sl)) < 0.1
    assert json.loads((tmp_path / "tc" / "metrics.json").read_text())["fvu"] == m["fvu"]
    assert json.loads((tmp_path / "tc" / "train_config.json").read_text())["k"] == CFG["k"]
    with pytest.raises(FileExistsError, match="overwrite"):
        save_transcoder(tc, tmp_path / "tc", {}, TranscoderConfig(**CFG))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match=r"k=32 exceeds d_sae=16 \(expansion 1 x d_in 16\)"):
        train_transcoder_on(sparse_linear(0), D_IN, D_OUT, TranscoderConfig(expansion=1, k=32))
    with pytest.raises(ValueError, match="transcoder k must be >= 1"):
        TranscoderConfig(k=0)
    shapes = r"must be \(x \(B, 16\), y \(B, 7\)\) of the same rows, got \(256, 16\) and \(256, 12\)"
    with pytest.raises(ValueError, match=shapes):
        train_transcoder_on(sparse_linear(0), D_IN, 7, TranscoderConfig(expansion=1, k=2, norm_batches=1))


def test_trains_from_a_tiny_cache(tmp_path):
    from activations.cache import CacheWriteConfig, open_cache, write_cache
    from activations.models import load_bridge
    from experiments.cache_set import CacheSetConfig, token_set
    from experiments.organisms.tokenizer import build_tokenizer
    from experiments.tasks import ArithmeticTask
    from tests.helpers import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    ids, labels = token_set(ArithmeticTask(), build_tokenizer(), CacheSetConfig(ks=[2], n_per_k=20), seed=0)
    hooks = ["blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out"]
    write_cache(load_bridge(model), ids, labels, tmp_path / "cache",
                CacheWriteConfig(hooks=hooks, chunk_rows=64, shard_sequences=16, batch_size=8), {"model": model})
    with open_cache(tmp_path / "cache") as c:  # the pairs are the same rows of both hooks
        acts_in, acts_out = c.activations(hooks[0]), c.activations(hooks[1])
        x, y = next(shuffled_pairs(c, *hooks, batch_size=32, buffer_rows=64, seed=0))
        row = (x[:, None] == acts_in[None]).all(-1).float().argmax(1)  # equal rows (BOS) have equal outputs too
        assert (acts_in[row] == x).all() and (acts_out[row] == y).all() and len(set(row.tolist())) > 16
    cfg = TranscoderConfig(expansion=2, k=4, steps=30, batch_size=64, buffer_rows=128, lr=3e-3, norm_batches=2,
                           threshold_batches=2)
    m = train_transcoder(tmp_path / "cache", *hooks, cfg, tmp_path / "tc")
    assert m["hook_in"] == hooks[0] and m["hook_out"] == hooks[1]
    assert 0 <= m["fvu"] < 1, m  # measured 0.71 (TopK mode 0.68) after 30 steps
    tc = load_transcoder(tmp_path / "tc")
    assert tc.cfg.metadata.hook_name == hooks[0] and tc.cfg.d_in == tc.cfg.d_out == 32 and tc.cfg.d_sae == 64
