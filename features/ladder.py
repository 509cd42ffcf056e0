"""Interventions at one position through one SAE whose values differ per item, and the
attribution that ranks latents for them: the latent-patching ladder (Marks et al. 2024,
"Sparse feature circuits") and the base-free interventions read against it.

Every hook factory returns `fn(x, hook) -> x'` for activations x of shape (B, 1, d) or
(B, d) at the intervened position (`features.patching.LastTokenRunner` runs only the answer
prefix), with per-item data given for the same B rows. With the SAE's code f = encode(x)
and error e = x - decode(f):

    patch_latents    decode(f with f[L] := f_donor[L]) + e            (the latents L from a donor
                     model's activation on the same input; error=True takes the donor's error
                     too: with L = every latent that is exactly the donor's activation)
    patch_error      decode(f) + e_donor                              (only the SAE error term)
    clamp_per_item   decode(f with f[L] := v[item]) + e               (values per item, e.g. read
                     off the item's CoT)
    ablate_rows      x + decode(f with f[L] := 0) - decode(f)          (error kept; any dictionary
                     with encode/decode, e.g. a crosscoder read from one model)
    project_rows     x - x Q Q^T, Q an orthonormal basis of the rows' span (decoder rows)
    transcoder_ablation   two hooks: the MLP input read at blocks.L.hook_resid_mid, then at
                     blocks.L.hook_mlp_out y + decode(f with f[L] := 0) - decode(f), f = encode(MLP input)

`code_gradient` gives, at each sequence's last position, the code f and d log p(target) /
d f with the SAE spliced in (error held fixed): the first-order effect of changing latent i
by delta_i is grad_i * delta_i, which ranks latents for patching (delta = f_donor - f) and
for ablation (delta = -f) with one backward pass per batch. With `read_hook` the code is read
from another hook (a transcoder: the MLP input) and the decoder is spliced in at `hook`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from activations.tokens import right_pad


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """x as (B, d) float rows of the SAE's dtype, and the inverse back to x's shape and dtype."""
    shape, dtype = x.shape, x.dtype
    return x.reshape(-1, shape[-1]).float(), lambda y: y.reshape(shape).to(dtype)


def _check_rows(x: torch.Tensor, values: torch.Tensor, what: str) -> None:
    if x.shape[0] != values.shape[0]:
        raise ValueError(f"{what}: {values.shape[0]} rows of per-item data for a batch of {x.shape[0]} items")


def patch_latents(sae, donor: torch.Tensor, latents: Sequence[int] | torch.Tensor | None, error: bool = False
                  ) -> Callable:
    """The receiver's activation with the latents `latents` (None: all) set to their values in
    `donor` (B, d): the donor's activation of the same B items at the same site."""
    idx = None if latents is None else torch.as_tensor(latents, dtype=torch.long)

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        rows, back = _rows(x)
        _check_rows(rows, donor, "patch_latents")
        d = donor.to(rows.device).float()
        f, fd = sae.encode(rows), sae.encode(d)
        err = (d - sae.decode(fd)) if error else (rows - sae.decode(f))
        if idx is None:
            f = fd
        else:
            f = f.clone()
            f[:, idx] = fd[:, idx]
        return back(sae.decode(f) + err)

    return fn


def patch_error(sae, donor: torch.Tensor) -> Callable:
    """The receiver's reconstruction plus the donor's SAE error term: what the dictionary
    misses of the donor, patched alone."""

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        rows, back = _rows(x)
        _check_rows(rows, donor, "patch_error")
        d = donor.to(rows.device).float()
        return back(sae.decode(sae.encode(rows)) + d - sae.decode(sae.encode(d)))

    return fn


def clamp_per_item(sae, latents: Sequence[int], values: torch.Tensor) -> Callable:
    """The latents `latents` set to `values` (B, len(latents)), one row per item; the SAE
    error and every other latent kept."""
    idx = torch.as_tensor(latents, dtype=torch.long)
    if values.ndim != 2 or values.shape[1] != len(idx):
        raise ValueError(f"clamp_per_item: values must be (B, {len(idx)}), got {tuple(values.shape)}")

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        rows, back = _rows(x)
        _check_rows(rows, values, "clamp_per_item")
        f = sae.encode(rows)
        g = f.clone()
        g[:, idx] = values.to(rows.device).float()
        return back(rows + sae.decode(g) - sae.decode(f))

    return fn


def ablate_rows(sae, latents: Sequence[int]) -> Callable:
    """The latents `latents` set to 0, the rest of the code and the error kept: x +
    decode(f with f[L] = 0) - decode(f). Needs only `encode` and `decode`."""
    idx = torch.as_tensor(latents, dtype=torch.long)

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        rows, back = _rows(x)
        f = sae.encode(rows)
        g = f.clone()
        g[:, idx] = 0
        return back(rows + sae.decode(g) - sae.decode(f))

    return fn


def transcoder_ablation(tc, layer: int, latents: Sequence[int]) -> list[tuple[str, Callable]]:
    """Hooks that ablate transcoder latents `latents` of MLP `layer`: the MLP input is read
    at hook_resid_mid (the hook runs before the MLP in the same forward pass), and the MLP
    output becomes y + decode(f with f[L] = 0) - decode(f), f the code of that input (what
    the MLP computes beyond the transcoder is kept)."""
    idx = torch.as_tensor(latents, dtype=torch.long)
    store = {}

    def read(x: torch.Tensor, hook=None) -> torch.Tensor:
        store["x"] = x
        return x

    def write(y: torch.Tensor, hook=None) -> torch.Tensor:
        rows, back = _rows(y)
        f = tc.encode(store.pop("x").reshape(len(rows), -1).float())
        g = f.clone()
        g[:, idx] = 0
        return back(rows + tc.decode(g) - tc.decode(f))

    return [(f"blocks.{layer}.hook_resid_mid", read), (f"blocks.{layer}.hook_mlp_out", write)]


def project_rows(rows: torch.Tensor) -> Callable:
    """x with its component in the span of `rows` (n, d) removed (e.g. decoder rows of the
    latents that carry a shortcut): a fixed linear map, no SAE at steering time."""
    q, _ = torch.linalg.qr(rows.detach().float().T)  # (d, n) orthonormal columns

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        r, back = _rows(x)
        qq = q.to(r.device)
        return back(r - (r @ qq) @ qq.T)

    return fn


def code_gradient(model, sae, hook: str, token_ids: Sequence[np.ndarray], targets: np.ndarray,
                  batch_size: int = 128, read_hook: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(f, grad), each (N, d_sae): the SAE code of `model`'s activation at `hook` (or at
    `read_hook`, which must run earlier in the forward pass) at each sequence's last position,
    and d log p(targets[n]) / d f there (the decoder spliced in at `hook` at that position only,
    the activation's value unchanged: the error held fixed)."""
    codes, grads = [], []
    dev = next(model.parameters()).device
    for b in range(0, len(token_ids), batch_size):
        tokens, valid = right_pad(token_ids[b:b + batch_size])
        last = (valid.sum(1) - 1).to(dev)
        rows = torch.arange(len(tokens), device=dev)
        store = {}

        def read(x, hook):
            store["x"] = x[rows, last].detach().float()
            return x

        def splice(x, hook):
            xl = x[rows, last].detach().float()
            f = sae.encode(store["x"] if read_hook else xl).detach().requires_grad_(True)
            recon = sae.decode(f)
            store["f"] = f
            x = x.clone()
            x[rows, last] = (xl + recon - recon.detach()).to(x.dtype)
            return x

        hooks = ([(read_hook, read)] if read_hook else []) + [(hook, splice)]
        with torch.enable_grad():
            logits = model.run_with_hooks(tokens.to(dev), fwd_hooks=hooks)
            lp = logits[rows, last].float().log_softmax(-1)
            t = torch.as_tensor(np.asarray(targets[b:b + batch_size]), device=dev)
            (g,) = torch.autograd.grad(lp[rows, t].sum(), store["f"])
        codes.append(store["f"].detach().cpu())
        grads.append(g.detach().cpu())
    return torch.cat(codes), torch.cat(grads)


def patch_attribution(grad: torch.Tensor, code: torch.Tensor, donor_code: torch.Tensor) -> torch.Tensor:
    """(d_sae,) mean first-order gain in log p(target) from patching each latent from the
    donor: mean_n grad[n, i] * (donor_code[n, i] - code[n, i])."""
    return (grad * (donor_code - code)).mean(0)


def ablation_attribution(grad: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """(d_sae,) mean first-order gain in log p(target) from ablating each latent (setting it
    to 0): mean_n -grad[n, i] * code[n, i]."""
    return -(grad * code).mean(0)
