"""Loading SAEs: a folder in SAELens' format (ours or SAELens'), or a SAELens pretrained
release and id (GPU nodes with network), checked against the activations they will read.

Offline, `SAE.from_pretrained` retried for ~24 s before failing; here a release is first
looked up in SAELens' (local) directory, and the download is refused at once when
HF_HUB_OFFLINE is set or huggingface.co cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

SAE_FILES = ("cfg.json", "sae_weights.safetensors")


def load_sae_folder(path: str | Path, device: str = "cpu"):
    """An SAE saved in SAELens' inference format (`cfg.json` + `sae_weights.safetensors`)."""
    from sae_lens import SAE

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no SAE folder at {path}")
    missing = [f for f in SAE_FILES if not (path / f).is_file()]
    if missing and (path / "crosscoder_weights.safetensors").is_file():
        raise ValueError(f"{path} is a saelab crosscoder, not an SAE; load it with sae.crosscoder.load_crosscoder")
    if missing:
        raise ValueError(f"{path} is not a SAELens SAE folder (missing {', '.join(missing)}); "
                         "save one with sae.save_inference_model(path) or train one with saelab")
    with damaged_files(path, "SAE", "save or train it again"):
        cfg = json.loads((path / "cfg.json").read_text())
        if not isinstance(cfg, dict):
            raise ValueError(f"cfg.json is a JSON {type(cfg).__name__}, not an object")
        bad = [k for k in ("d_in", "d_sae") if k in cfg and (not isinstance(cfg[k], int) or isinstance(cfg[k], bool))]
        if bad:  # SAELens would fail deep inside torch with a TypeError
            raise ValueError(f"cfg.json: {', '.join(f'{k}={cfg[k]!r}' for k in bad)} must be whole numbers")
        return SAE.load_from_disk(str(path), device=device)


@contextlib.contextmanager
def damaged_files(path: Path, what: str, fix: str) -> Iterator[None]:
    """Errors from reading a saved SAE or crosscoder (unparsable or ill-typed cfg.json,
    truncated safetensors, shapes that do not match) as one line naming the folder."""
    from safetensors import SafetensorError

    try:
        yield
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError, SafetensorError) as e:
        detail = " ".join(str(e).split())[:300]
        raise ValueError(f"cannot load the {what} in {path}: {type(e).__name__}: {detail}; the folder is damaged "
                         f"or not in the expected format: {fix}") from None


def load_pretrained(release: str, sae_id: str, device: str = "cpu"):
    """A SAELens pretrained SAE; fails at once, naming the release, when it cannot be had."""
    from sae_lens import SAE

    check_pretrained(release, sae_id)
    return SAE.from_pretrained(release, sae_id, device=device)


def check_pretrained(release: str, sae_id: str) -> None:
    """Fail at once, with the fix, when a SAELens release or id does not exist, or cannot be
    downloaded (offline, or huggingface.co unreachable) and is not in the local cache."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        close = sorted(r for r in directory if release.split("-")[0] in r)[:5]
        raise ValueError(f"unknown SAELens release {release!r}" + (f"; similar: {close}" if close else ""))
    ids = directory[release].saes_map
    if sae_id not in ids:
        raise ValueError(f"release {release!r} has no SAE {sae_id!r}; it has e.g. {list(ids)[:5]}")
    lookup = directory[release]
    if not _in_local_cache(lookup.repo_id, ids[sae_id]):
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise ConnectionError(f"cannot download SAE {release}/{sae_id}: offline (HF_HUB_OFFLINE is set) and "
                                  "not in the local Hugging Face cache; on a machine with network it downloads")
        from activations.models import hub_reachable

        if not hub_reachable():
            raise ConnectionError(f"cannot download SAE {release}/{sae_id}: huggingface.co is unreachable from here "
                                  "and it is not in the local Hugging Face cache")


def _in_local_cache(repo_id: str, path: str) -> bool:
    """True when the SAE's cfg.json is already in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    for name in ("cfg.json", "config.json"):
        hit = try_to_load_from_cache(repo_id, f"{path}/{name}" if path else name)
        if isinstance(hit, str):
            return True
    return False


def check_fits(sae, d_model: int, hook: str) -> None:
    """Refuse an SAE whose width or hook does not match the activations it is given."""
    if sae.cfg.d_in != d_model:
        raise ValueError(f"the SAE reads d_in={sae.cfg.d_in} but the activations have d_model={d_model}")
    trained_on = getattr(sae.cfg.metadata, "hook_name", None)
    if trained_on is not None and trained_on != hook:
        try:  # a HF module path names the same tensor as its bridge hook
            same = bridge_hook_name(trained_on, [hook]) == hook
        except ValueError:
            same = False
        if not same:
            raise ValueError(f"the SAE was trained on {trained_on!r}, not {hook!r}")


# Hook names of SAEs trained outside TransformerLens (HF module paths, e.g. sparsify's
# `layers.12`) and the bridge hook that reads the same tensor (the module's output).
_HF_HOOKS = [
    (r"(?:model\.)?layers\.(\d+)", "blocks.{}.hook_resid_post"),
    (r"(?:model\.)?layers\.(\d+)\.mlp", "blocks.{}.hook_mlp_out"),
    (r"(?:model\.)?layers\.(\d+)\.self_attn", "blocks.{}.hook_attn_out"),
    (r"transformer\.h\.(\d+)", "blocks.{}.hook_resid_post"),
    (r"transformer\.h\.(\d+)\.mlp", "blocks.{}.hook_mlp_out"),
    (r"transformer\.h\.(\d+)\.attn", "blocks.{}.hook_attn_out"),
]


def bridge_hook_name(name: str, hook_names) -> str:
    """The TransformerBridge hook an SAE's recorded hook name (`sae.cfg.metadata.hook_name`)
    refers to: a TransformerLens name as is (the bridge keeps HookedTransformer's names as
    aliases), or a HF module path mapped to the hook of that module's output. `hook_names`:
    the bridge's `hook_dict` (or any collection of its names)."""
    import re

    names = set(hook_names)
    if name in names:
        return name
    for pattern, template in _HF_HOOKS:
        m = re.fullmatch(pattern, name)
        if m and template.format(m.group(1)) in names:
            return template.format(m.group(1))
    layer = re.search(r"\d+", name)
    close = sorted(n for n in names if layer and f".{layer.group()}." in f".{n}." and n.startswith("blocks."))[:5]
    raise ValueError(f"the SAE's hook {name!r} is not a hook of this model" + (f"; e.g. {close}" if close else "")
                     + "; pass the hook name to use explicitly")
