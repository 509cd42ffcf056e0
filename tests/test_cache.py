"""The HDF5 activation cache: round trips against run_with_cache, dtypes, shuffled and
filtered reading, pairs, resumption after kill -9, two writers under torchrun, bad inputs."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from activations.cache import CacheError, CacheWriteConfig, open_cache, open_paired, write_cache
from activations.models import load_bridge
from experiments.cache_set import CacheSetConfig, token_set
from experiments.cli import main
from experiments.organisms.tokenizer import build_tokenizer
from experiments.tasks import ROLES, ArithmeticTask
from tests.helpers import save_tiny_model

TASK, TOK = ArithmeticTask(), build_tokenizer()
HOOKS = ["blocks.{l}.hook_resid_post", "hook_embed"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two random tiny models (a 'base' and a 'fine-tune') and the token set."""
    root = tmp_path_factory.mktemp("tiny")
    a, b = save_tiny_model(root / "a", seed=0), save_tiny_model(root / "b", seed=1)
    ids, labels = token_set(TASK, TOK, CacheSetConfig(ks=[2], n_per_k=20), seed=0)
    return {"a": a, "b": b, "ids": ids, "labels": labels, "bridge_a": load_bridge(a), "bridge_b": load_bridge(b)}


def write(tiny, out, model="a", **kw):
    cfg = CacheWriteConfig(**{"hooks": HOOKS, "chunk_rows": 64, "shard_sequences": 16, "batch_size": 8, **kw})
    return write_cache(tiny[f"bridge_{model}"], tiny["ids"], tiny["labels"], out, cfg, {"model": tiny[model]})


def test_round_trip_every_hook_token_and_label(tiny, tmp_path):
    meta = write(tiny, tmp_path / "c")
    assert meta["hooks"] == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "hook_embed"]
    with open_cache(tmp_path / "c") as c:
        assert c.complete and c.n_rows == sum(map(len, tiny["ids"])) and len(c.shard_rows) == 4
        seq, pos, tok = c.column("seq"), c.column("pos"), c.column("token_ids")
        for s in (0, 17, len(tiny["ids"]) - 1):  # sequences in different shards
            rows = np.nonzero(seq == s)[0]
            ids = tiny["ids"][s]
            assert (pos[rows] == np.arange(len(ids))).all() and (tok[rows] == ids).all()
            for name, arrs in tiny["labels"].items():
                assert (c.column(name)[rows] == arrs[s]).all(), name
            _, ref = tiny["bridge_a"].run_with_cache(torch.tensor(ids)[None], names_filter=c.hooks)
            for h in c.hooks:
                got = c.activations(h, rows[0], rows[-1] + 1)
                torch.testing.assert_close(got, ref[h][0].half().float(), atol=1e-3, rtol=1e-3)
        roles = c.column("role")
        assert set(np.unique(roles)) <= set(range(len(ROLES))) and (roles == 1).sum() > 0  # step tokens


def test_float32_is_exact_and_bfloat16_keeps_its_bits(tiny, tmp_path):
    write(tiny, tmp_path / "f32", dtype="float32")
    write(tiny, tmp_path / "bf16", dtype="bfloat16")
    ids = tiny["ids"][3]
    _, ref = tiny["bridge_a"].run_with_cache(torch.tensor(ids)[None], names_filter=["blocks.1.hook_resid_post"])
    want = ref["blocks.1.hook_resid_post"][0]
    with open_cache(tmp_path / "f32") as c32, open_cache(tmp_path / "bf16") as c16:
        rows = np.nonzero(c32.column("seq") == 3)[0]
        got32 = c32.activations("blocks.1.hook_resid_post", rows[0], rows[-1] + 1)
        got16 = c16.activations("blocks.1.hook_resid_post", rows[0], rows[-1] + 1)
    torch.testing.assert_close(got32, want, atol=1e-5, rtol=1e-5)  # batching may reorder sums
    assert torch.equal(got16, got32.to(torch.bfloat16).float())


def test_shuffled_reading_is_seeded_complete_and_filtered(tiny, tmp_path):
    write(tiny, tmp_path / "c", dtype="float32")
    with open_cache(tmp_path / "c") as c:
        hook = "blocks.1.hook_resid_post"
        everything = c.activations(hook)
        one = [b.clone() for b in c.shuffled(hook, 32, buffer_rows=100, seed=3, epochs=1)]
        two = [b.clone() for b in c.shuffled(hook, 32, buffer_rows=100, seed=3, epochs=1)]
        other = next(iter(c.shuffled(hook, 32, buffer_rows=100, seed=4)))
        assert all(torch.equal(x, y) for x, y in zip(one, two)) and not torch.equal(one[0], other)
        got = torch.cat(one)
        assert all(len(b) == 32 for b in one[:-1]) and len(got) == c.n_rows
        # one epoch is a permutation of the rows
        key = lambda t: t[:, 0] * 1e3 + t[:, 1]  # noqa: E731
        assert torch.equal(key(got).sort().values, key(everything).sort().values)
        assert not torch.equal(got, everything)
        # a label filter keeps exactly the matching rows
        step = c.column("role") == 1
        kept = torch.cat(list(c.shuffled(hook, 16, buffer_rows=64, seed=0, where={"role": 1}, epochs=1)))
        assert torch.equal(key(kept).sort().values, key(everything[step]).sort().values)
        seq = torch.cat(list(c.batches(hook, 50, where={"variant": [0, 1], "role": 1})))
        mask = step & np.isin(c.column("variant"), [0, 1])
        assert torch.equal(seq, everything[mask])
        # a function of the columns filters the same way; epochs=2 gives every row twice
        by_fn = torch.cat(list(c.shuffled(hook, 16, buffer_rows=64, seed=0, where=lambda col: col["role"] == 1,
                                          epochs=2)))
        assert torch.equal(key(by_fn).sort().values, key(torch.cat([everything[step]] * 2)).sort().values)
        with pytest.raises(CacheError, match="no column 'rol' to filter on; columns: token_ids, seq, pos, role"):
            next(c.batches(hook, 8, where={"rol": 1}))
        with pytest.raises(ValueError, match="a `where` function must return a bool mask of shape"):
            next(c.batches(hook, 8, where=lambda col: True))
        with pytest.raises(CacheError, match="no rows pass the filter"):
            next(c.shuffled(hook, 8, buffer_rows=8, where={"role": 99}))
        with pytest.raises(CacheError, match="hook 'nope' is not in this cache"):
            next(c.batches("nope", 8))


def test_paired_reading_and_refusals(tiny, tmp_path):
    write(tiny, tmp_path / "a", model="a")
    write(tiny, tmp_path / "b", model="b")
    hook = "blocks.0.hook_resid_post"
    with open_paired(tmp_path / "a", tmp_path / "b") as pair:
        xa, xb = pair.a.activations(hook), pair.b.activations(hook)
        a, b = next(iter(pair.batches(hook, 40)))
        assert torch.equal(a, xa[:40]) and torch.equal(b, xb[:40])
        for a, b in pair.shuffled(hook, 16, buffer_rows=50, seed=1, epochs=1):
            rows = [int((xa == r).all(1).nonzero()[0]) for r in a[:5]]  # where each row came from
            assert torch.equal(b[:5], xb[rows])
    # another token set, other hooks: refused, saying which
    ids = [x[:-1] for x in tiny["ids"]]
    write_cache(tiny["bridge_b"], ids, {k: [a[:-1] for a in v] for k, v in tiny["labels"].items()}, tmp_path / "c",
                CacheWriteConfig(hooks=HOOKS, chunk_rows=64, shard_sequences=16, batch_size=8), {"model": "b"})
    with pytest.raises(CacheError, match="not a pair: their token ids differ"):
        open_paired(tmp_path / "a", tmp_path / "c")
    write_cache(tiny["bridge_b"], tiny["ids"], tiny["labels"], tmp_path / "d",
                CacheWriteConfig(hooks=["blocks.0.hook_resid_post"], chunk_rows=64, shard_sequences=16), {"model": "b"})
    with pytest.raises(CacheError, match="not a pair: their hooks differ"):
        open_paired(tmp_path / "a", tmp_path / "d")
    # the same tokens cached through another tokenizer (as its provenance says): refused
    write_cache(tiny["bridge_b"], tiny["ids"], tiny["labels"], tmp_path / "e",
                CacheWriteConfig(hooks=HOOKS, chunk_rows=64, shard_sequences=16, batch_size=8),
                {"model": "b", "tokenizer_hash": "0123"})
    with pytest.raises(CacheError, match="not a pair: their tokenizers differ"):
        open_paired(tmp_path / "a", tmp_path / "e")


def test_bad_inputs_are_one_line_errors(tiny, tmp_path, monkeypatch):
    with pytest.raises(CacheError, match=r"no hook 'blocks.9.hook_resid_post'; residual-stream hooks: .*"
                                         r"blocks.\{l\}.hook_resid_post \(l = 0..1\)"):
        write(tiny, tmp_path / "x", hooks=["blocks.9.hook_resid_post"])
    # different settings on an existing cache
    write(tiny, tmp_path / "c")
    with pytest.raises(CacheError, match="written with other settings \\(differs in: write_config\\)"):
        write(tiny, tmp_path / "c", dtype="float32")
    # flipped bytes inside a shard: caught by the checksums in index.json
    shard = tmp_path / "c" / "shards" / "shard-00002.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="shard-00002.h5 is corrupted \\(its checksum differs"):
        open_cache(tmp_path / "c", verify=True)
    assert main(["cache-info", str(tmp_path / "c"), "--verify"]) == 2
    # a truncated shard
    shard = tmp_path / "c" / "shards" / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(CacheError, match="shard-00001.h5 is missing or truncated"):
        open_cache(tmp_path / "c")
    # an incomplete cache: refused, and resumable (the damaged shard is rewritten)
    (tmp_path / "c" / "index.json").unlink()
    with pytest.raises(CacheError, match="is incomplete .* re-run the command that wrote it"):
        open_cache(tmp_path / "c")
    write(tiny, tmp_path / "c")
    with open_cache(tmp_path / "c") as c:
        assert c.complete and c.n_rows == sum(map(len, tiny["ids"]))
    # NaN activations: the location is reported, the shard is not finished
    bad = load_bridge(tiny["a"])
    with torch.no_grad():
        bad.original_model.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(CacheError, match=r"non-finite activations \(NaN/inf, or beyond float16's range\) at hook "
                                         r"blocks.1.hook_resid_post, sequence 0, position 0"):
        write_cache(bad, tiny["ids"], tiny["labels"], tmp_path / "nan", CacheWriteConfig(hooks=HOOKS), {"model": "x"})
    assert not list((tmp_path / "nan" / "shards").iterdir()) and not (tmp_path / "nan" / "index.json").exists()
    # activations beyond float16's range: refused in float16, stored in float32
    big = load_bridge(tiny["a"])
    with torch.no_grad():
        big.original_model.model.embed_tokens.weight.mul_(1e6)
    with pytest.raises(CacheError, match=r"beyond float16's range\) at hook blocks.0.hook_resid_post, sequence 0"):
        write_cache(big, tiny["ids"], tiny["labels"], tmp_path / "big", CacheWriteConfig(hooks=HOOKS), {"model": "x"})
    write_cache(big, tiny["ids"], tiny["labels"], tmp_path / "big32", CacheWriteConfig(hooks=HOOKS, dtype="float32"),
                {"model": "x"})

    # a full disk
    def no_space(self, *a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_space)
    with pytest.raises(CacheError, match="shard-00000.h5 failed: No space left on device; free space and re-run"):
        write(tiny, tmp_path / "full")
    assert not list((tmp_path / "full" / "shards").iterdir())


def _cache_cmd(model, out, config):
    return [sys.executable, "-m", "experiments.cli", "cache", "--model", model, "--out", str(out),
            "--config", str(config)]


def _contents(path):
    with open_cache(path) as c:
        cols = {n: c.column(n) for n in ["token_ids", "seq", "pos"] + c.meta["label_names"]}
        return cols | {h: c.activations(h).numpy() for h in c.hooks}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text("cache:\n  tokens: {ks: [2, 3], n_per_k: 150}\n"
                    "  write: {shard_sequences: 16, chunk_rows: 128, batch_size: 16}\n")
    return path


def test_killed_writer_resumes_to_the_same_cache(tiny, tmp_path, cli_config):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    assert subprocess.run(_cache_cmd(tiny["a"], ref, cli_config), env=env, capture_output=True).returncode == 0
    out = tmp_path / "killed"
    rng = random.Random(0)
    for attempt in range(2):
        before = len(list(out.glob("shards/shard-*.h5")))
        proc = subprocess.Popen(_cache_cmd(tiny["a"], out, cli_config), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120  # kill once this attempt has finished a shard of its own
        while time.time() < deadline and proc.poll() is None and len(list(out.glob("shards/shard-*.h5"))) <= before:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (out / "index.json").exists():
            with pytest.raises(CacheError, match="is incomplete"):
                open_cache(out)
    assert subprocess.run(_cache_cmd(tiny["a"], out, cli_config), env=env, capture_output=True).returncode == 0
    assert not list(out.glob("shards/.*"))
    _same(_contents(out), _contents(ref))


def test_two_writers_under_torchrun_equal_one(tiny, tmp_path, cli_config):
    one, two = tmp_path / "one", tmp_path / "two"
    assert subprocess.run(_cache_cmd(tiny["a"], one, cli_config), capture_output=True).returncode == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(29500 + os.getpid() % 1000), "-m", "experiments.cli", *_cache_cmd(tiny["a"], two, cli_config)[3:]]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    _same(_contents(two), _contents(one))
    meta = json.loads((two / "meta.json").read_text())
    ranks = {h5py.File(p, "r").attrs["rank"] for p in sorted((two / "shards").glob("shard-*.h5"))}
    assert meta["n_shards"] >= 4 and ranks == {0, 1}  # both ranks wrote their share


def test_retrained_model_is_not_served_a_stale_cache(tiny, tmp_path, cli_config, capsys):
    import shutil

    model = shutil.copytree(tiny["a"], tmp_path / "model")
    out = tmp_path / "c"
    args = ["cache", "--model", str(model), "--out", str(out), "--config", str(cli_config)]
    assert main(args) == 0
    shutil.copy(os.path.join(tiny["b"], "model.safetensors"), model / "model.safetensors")  # "retrained"
    assert main(args) == 2
    assert "written with other settings (differs in: weights_hash)" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    ref = tmp_path / "ref"
    assert main(["cache", "--model", tiny["b"], "--out", str(ref), "--config", str(cli_config)]) == 0
    got, want = _contents(out), _contents(ref)
    assert all(np.array_equal(got[h], want[h]) for h in got if h.startswith("blocks"))


def test_writer_refuses_foreign_folders_and_a_second_writer(tiny, tmp_path):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(CacheError, match="exists and is not an activation cache"):
            write_cache(tiny["bridge_a"], tiny["ids"], tiny["labels"], tmp_path / "thesis", CacheWriteConfig(),
                        {"model": "a"}, overwrite=overwrite)
    assert (tmp_path / "thesis" / "thesis.tex").read_text() == "years of work"
    # what a writer killed before its meta.json was in place leaves: taken as a fresh folder
    (tmp_path / "early" / "shards").mkdir(parents=True)
    (tmp_path / "early" / ".meta.json.tmp-1").write_text("{")
    write(tiny, tmp_path / "early")
    assert open_cache(tmp_path / "early").complete
    import fcntl

    (tmp_path / "busy").mkdir()
    with open(tmp_path / "busy" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(CacheError, match="another writer is filling"):
            write(tiny, tmp_path / "busy")


def test_cache_cli_info_and_errors(tiny, tmp_path, cli_config, capsys):
    out = tmp_path / "c"
    assert main(["cache", "--model", tiny["a"], "--out", str(out), "--config", str(cli_config)]) == 0
    assert main(["cache-info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "status     complete" in info and "blocks.1.hook_resid_post" in info and "label      role: question:" in info
    assert main(["cache", "--model", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no model at" in capsys.readouterr().err
    assert main(["cache-info", str(tmp_path)]) == 2
    assert "is not an activation cache" in capsys.readouterr().err
