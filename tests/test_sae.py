"""SAE training from the activation cache with SAELens' trainer: every architecture trains,
saves in SAELens' format and loads back with SAELens; seeded; exported L0 is checked."""

import json
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from activations.cache import CacheWriteConfig, write_cache
from activations.models import load_bridge
from experiments.cache_set import CacheSetConfig, token_set
from experiments.organisms.tokenizer import build_tokenizer
from experiments.tasks import ArithmeticTask
from sae.train import SAETrainConfig, train_sae
from tests.helpers import plus_minus_sae, save_tiny_model

HOOK = "blocks.1.hook_resid_post"
ARCHS = ["standard", "topk", "batchtopk", "jumprelu", "gated", "matryoshka_batchtopk"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae")
    bridge = load_bridge(save_tiny_model(root / "m"))
    ids, labels = token_set(ArithmeticTask(), build_tokenizer(), CacheSetConfig(ks=[2, 3], n_per_k=60), seed=0)
    write_cache(bridge, ids, labels, root / "c", CacheWriteConfig(hooks=[HOOK], chunk_rows=256), {"model": "m"})
    return root / "c"


def small(**kw):
    return SAETrainConfig(**{"steps": 25, "batch_size": 128, "buffer_rows": 1024, "norm_batches": 4, "k": 4,
                             "expansion": 4, **kw})


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_trains_saves_and_loads_with_saelens(cache, tmp_path, arch):
    metrics = train_sae(cache, HOOK, small(architecture=arch), tmp_path / "sae")
    sae = SAE.load_from_disk(str(tmp_path / "sae"))
    assert sae.cfg.d_in == 32 and sae.cfg.d_sae == 128 and sae.cfg.metadata.hook_name == HOOK
    assert sae.cfg.metadata.dataset_path == str(cache) and sae.cfg.metadata.model_name == "m"
    saved = json.loads((tmp_path / "sae" / "metrics.json").read_text())
    assert saved == metrics and json.loads((tmp_path / "sae" / "train_config.json").read_text())["architecture"] == arch
    assert 0 < metrics["l0"] <= 128 and metrics["train_fvu"] < 1.5
    if arch == "topk":
        assert metrics["l0"] == 4 and "warning" not in metrics  # exactly k per token
    if arch in ("batchtopk", "matryoshka_batchtopk"):
        # exported as JumpReLU with a threshold barely trained in 25 steps: L0 ~43, flagged
        assert metrics["l0"] > 6 and "is off the trained k=4 by more than 1.5x" in metrics["warning"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_training_is_seeded_and_learns(cache, tmp_path):
    a = train_sae(cache, HOOK, small(steps=80), tmp_path / "a")
    train_sae(cache, HOOK, small(steps=80), tmp_path / "b")
    train_sae(cache, HOOK, small(steps=80, seed=1), tmp_path / "c")
    w = {n: SAE.load_from_disk(str(tmp_path / n)).W_enc for n in "abc"}
    assert torch.equal(w["a"], w["b"]) and not torch.equal(w["a"], w["c"])
    untrained = train_sae(cache, HOOK, small(steps=1, lr=1e-9), tmp_path / "d")
    assert a["train_fvu"] < untrained["train_fvu"]


def test_bad_inputs(cache, tmp_path):
    with pytest.raises(ValueError, match="unknown SAE architecture 'topkk'; SAELens has"):
        train_sae(cache, HOOK, small(architecture="topkk"), tmp_path / "x")
    with pytest.raises(ValueError, match=r"sae options \['no_such_field'\] are not fields of SAELens' TopKTrainingSAEConfig"):
        train_sae(cache, HOOK, small(options={"no_such_field": 1}), tmp_path / "x")
    with pytest.raises(ValueError, match="sae checkpoints must be >= 0"):
        small(checkpoints=-1)
    with pytest.raises(ValueError, match="hook 'blocks.0.hook_resid_post' is not in the cache"):
        train_sae(cache, "blocks.0.hook_resid_post", small(), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_our_saes_encode_identically_after_loading_and_saelens_saves_load_in_saelab(cache, tmp_path):
    from activations.cache import open_cache
    from sae.load import check_fits, load_sae_folder

    train_sae(cache, HOOK, small(), tmp_path / "ours")
    with open_cache(cache) as c:
        x = c.activations(HOOK, 0, 200)
    ours = load_sae_folder(tmp_path / "ours")
    theirs = SAE.load_from_disk(str(tmp_path / "ours"))
    assert torch.equal(ours.encode(x), theirs.encode(x))
    check_fits(ours, 32, HOOK)
    with pytest.raises(ValueError, match="the SAE was trained on 'blocks.1.hook_resid_post', not 'blocks.0"):
        check_fits(ours, 32, "blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="the SAE reads d_in=32 but the activations have d_model=64"):
        check_fits(ours, 64, HOOK)


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu", "gated"])
def test_saes_saved_by_saelens_load_in_saelab(cache, tmp_path, arch):
    import dataclasses

    from sae_lens.registry import get_sae_class

    from activations.cache import open_cache
    from sae.load import load_sae_folder

    cls, cfg_cls = get_sae_class(arch)
    kw = {"d_in": 32, "d_sae": 64} | ({"k": 3} if "k" in {f.name for f in dataclasses.fields(cfg_cls)} else {})
    torch.manual_seed(0)
    native = cls(cfg_cls(**kw))
    with torch.no_grad():  # non-trivial weights, so encode has something to get right
        for p in native.parameters():
            p.add_(0.1 * torch.randn_like(p))
    native.save_model(str(tmp_path / "native"))
    with open_cache(cache) as c:
        x = c.activations(HOOK, 0, 200)
    assert torch.equal(load_sae_folder(tmp_path / "native").encode(x), native.encode(x))


def test_bad_sae_folders_and_releases_fail_at_once(tmp_path, monkeypatch):
    import time

    from sae.load import load_pretrained, load_sae_folder

    with pytest.raises(FileNotFoundError, match="no SAE folder at"):
        load_sae_folder(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "cfg.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a SAELens SAE folder \\(missing sae_weights.safetensors\\)"):
        load_sae_folder(tmp_path / "junk")
    with pytest.raises(ValueError, match="unknown SAELens release 'gpt2-small-res-jbb'"):
        load_pretrained("gpt2-small-res-jbb", "blocks.0.hook_resid_pre")
    with pytest.raises(ValueError, match="release 'gpt2-small-res-jb' has no SAE 'blocks.99.hook_resid_pre'"):
        load_pretrained("gpt2-small-res-jb", "blocks.99.hook_resid_pre")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot download SAE gpt2-small-res-jb/blocks.0.hook_resid_pre: offline"):
        load_pretrained("gpt2-small-res-jb", "blocks.0.hook_resid_pre")
    assert time.perf_counter() - t0 < 5


def test_reconstruction_and_transfer_metrics_by_hand():
    from sae.evaluate import reconstruction_metrics

    g = torch.Generator().manual_seed(0)
    own = torch.cat([torch.randn(1000, 4, generator=g), torch.zeros(1000, 4)], 1)  # lives in dims 0..3
    rotated = own[:, [4, 5, 6, 7, 0, 1, 2, 3]]                                      # the same, in dims 4..7
    sae = plus_minus_sae(8, 4)
    m = reconstruction_metrics(sae, own.split(300))
    assert m["n"] == 1000 and m["explained_variance"] == pytest.approx(1.0) and m["mse"] == pytest.approx(0.0)
    assert m["cosine"] == pytest.approx(1.0) and m["l0"] == pytest.approx(4.0)  # one of +-e_i per dimension
    assert m["dead_fraction"] == 0.0 and m["dense_fraction"] == 1.0              # each fires on ~half the rows
    t = reconstruction_metrics(sae, rotated.split(300))  # the SAE sees none of it
    sst = (rotated - rotated.mean(0)).pow(2).sum().item()
    assert t["explained_variance"] == pytest.approx(1 - rotated.pow(2).sum().item() / sst, abs=1e-6)
    assert t["mse"] == pytest.approx(rotated.pow(2).mean().item(), rel=1e-6)
    assert t["l0"] == 0.0 and t["dead_fraction"] == 1.0 and t["cosine"] == 0.0


def test_transfer_matrix_on_caches(cache, tmp_path):
    from sae.evaluate import evaluate_on_cache, transfer_matrix
    from sae.load import load_sae_folder

    train_sae(cache, HOOK, small(steps=60), tmp_path / "s")
    sae = load_sae_folder(tmp_path / "s")
    step_only = evaluate_on_cache(sae, cache, HOOK, where={"role": 1}, max_rows=500)
    assert step_only["n"] == 500
    m = transfer_matrix({"s": sae}, {"own": cache}, HOOK, max_rows=700)
    assert m["s"]["own"] == evaluate_on_cache(sae, cache, HOOK, max_rows=700) and m["s"]["own"]["n"] == 700
    with pytest.raises(ValueError, match="the SAE was trained on"):
        evaluate_on_cache(sae, cache, "blocks.0.hook_resid_post")


def test_paired_saes_share_initialisation_and_data_order(cache, tmp_path):
    import shutil

    import h5py
    import numpy as np

    from activations.cache import CacheError, open_cache
    from sae.train import build_training_sae, train_paired_saes

    # A "fine-tuned" cache of the same tokens: the base activations, doubled.
    ft = tmp_path / "ft"
    shutil.copytree(cache, ft)
    for p in (ft / "shards").glob("shard-*.h5"):
        with h5py.File(p, "r+") as f:
            f[f"acts/{HOOK}"][...] = (f[f"acts/{HOOK}"][...].astype(np.float32) * 2).astype(np.float16)
    with open_cache(cache) as a, open_cache(ft) as b:  # same rows, same order, for the same seed
        xa, xb = next(a.shuffled(HOOK, 64, 512, seed=5)), next(b.shuffled(HOOK, 64, 512, seed=5))
        assert torch.equal(xb, (xa * 2).half().float())
    cfg = small(steps=5)
    init_a, init_b = build_training_sae(cfg, 32), build_training_sae(cfg, 32)
    assert torch.equal(init_a.W_enc, init_b.W_enc)
    ma, mb = train_paired_saes(cache, ft, HOOK, small(steps=40), tmp_path / "a", tmp_path / "b")
    # Same init, same rows in the same order, and SAELens normalises away the factor 2: the
    # fine-tuned SAE fits its data exactly as well as the base SAE fits the base data.
    assert mb["train_fvu"] == pytest.approx(ma["train_fvu"], rel=1e-4) and mb["l0"] == ma["l0"]
    # caches of different tokens are not a pair
    other = tmp_path / "other"
    write_cache(load_bridge(str(cache.parent / "m")), *token_set(ArithmeticTask(), build_tokenizer(),
                CacheSetConfig(ks=[2], n_per_k=10), seed=0), other, CacheWriteConfig(hooks=[HOOK]), {"model": "m"})
    with pytest.raises(CacheError, match="not a pair"):
        train_paired_saes(cache, other, HOOK, cfg, tmp_path / "x", tmp_path / "y")


def test_spliced_loss_of_a_perfect_and_of_a_zero_sae(cache):
    import numpy as np

    from sae.evaluate import spliced_loss

    bridge = load_bridge(str(cache.parent / "m"))
    ids, labels = token_set(ArithmeticTask(), build_tokenizer(), CacheSetConfig(ks=[2], n_per_k=12), seed=3)
    step = {"step": [lab == 1 for lab in labels["role"]]}
    perfect = plus_minus_sae(32, 32)  # reconstructs every activation exactly
    r = spliced_loss(perfect, bridge, HOOK, ids, step, batch_size=5)
    n_all = sum(len(x) - 1 for x in ids)
    n_step = sum(int(np.asarray(m)[:-1].sum()) for m in step["step"])
    assert r["all"]["n"] == n_all and r["step"]["n"] == n_step > 0
    for m in ("all", "step"):
        assert r[m]["ce_sae"] == pytest.approx(r[m]["ce_clean"], abs=1e-4)
        assert r[m]["kl_sae"] == pytest.approx(0.0, abs=1e-5) and r[m]["ce_recovered"] == pytest.approx(1.0, abs=1e-3)
    zero = plus_minus_sae(32, 32)
    with torch.no_grad():
        zero.W_dec.zero_()  # decodes everything to 0: the same as zero-ablation
    z = spliced_loss(zero, bridge, HOOK, ids, step, batch_size=5)
    assert z["all"]["ce_sae"] == pytest.approx(z["all"]["ce_ablation"], abs=1e-5)
    assert z["all"]["ce_recovered"] == pytest.approx(0.0, abs=1e-4)
    assert z["all"]["ce_gap"] == pytest.approx(z["all"]["ce_ablation"] - z["all"]["ce_clean"])
    # the same numbers whatever the batching (right padding never leaks into valid positions)
    r1 = spliced_loss(perfect, bridge, HOOK, ids, step, batch_size=1)
    assert r1["step"]["ce_clean"] == pytest.approx(r["step"]["ce_clean"], abs=1e-5)


def test_interrupted_training_resumes_to_the_weights_of_an_uninterrupted_run(cache, tmp_path, monkeypatch):
    import sae.train as train

    cfg = small(steps=60, checkpoints=3)  # SAELens checkpoints once past 1/4, 2/4, 3/4: steps 16, 31, 46
    whole = train_sae(cache, HOOK, cfg, tmp_path / "whole")
    assert not (tmp_path / "whole.checkpoints").exists()  # removed once the SAE is saved

    real = train._trainer_class

    def dies_at_step_40():
        class Dies(real()):
            def step(self, batch):
                if self.n_training_samples >= 40 * cfg.batch_size:
                    raise KeyboardInterrupt
                return super().step(batch)
        return Dies

    monkeypatch.setattr(train, "_trainer_class", dies_at_step_40)
    with pytest.raises(KeyboardInterrupt):
        train_sae(cache, HOOK, cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert sorted(int(d.name) for d in (tmp_path / "r.checkpoints").iterdir() if d.is_dir()) == [16 * 128, 31 * 128]
    monkeypatch.setattr(train, "_trainer_class", real)
    written = []
    monkeypatch.setattr(train.shutil, "rmtree", lambda p, **kw: written.extend(
        sorted(int(d.name) for d in Path(p).iterdir() if d.is_dir())) if str(p).endswith("checkpoints") else None)
    resumed = train_sae(cache, HOOK, cfg, tmp_path / "r")
    monkeypatch.undo()
    assert written == [16 * 128, 31 * 128, 46 * 128]  # the passed checkpoints are not written again
    assert resumed["resumed_from_step"] == 31
    a, b = SAE.load_from_disk(str(tmp_path / "whole")), SAE.load_from_disk(str(tmp_path / "r"))
    for name, p in a.state_dict().items():
        assert torch.allclose(p, b.state_dict()[name], atol=1e-6), name
    assert resumed["train_fvu"] == pytest.approx(whole["train_fvu"], abs=1e-6)

    # checkpoints of another config are refused, naming what differs, and kept
    monkeypatch.setattr(train, "_trainer_class", dies_at_step_40)
    with pytest.raises(KeyboardInterrupt):
        train_sae(cache, HOOK, cfg, tmp_path / "s")
    monkeypatch.setattr(train, "_trainer_class", real)
    with pytest.raises(ValueError, match=r"s.checkpoints holds checkpoints of another run \(differs in config.lr\)"):
        train_sae(cache, HOOK, small(steps=60, checkpoints=3, lr=1e-3), tmp_path / "s")
    assert (tmp_path / "s.checkpoints").is_dir()
