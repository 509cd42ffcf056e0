"""Interventions on residual vectors, computed by hand; hooks in generation; hooks removed
after errors; bad input as one-line errors."""

import pytest
import torch

from activations.generate import generate_text
from activations.models import load_bridge
from features.steer import (ablate_latents, add_direction, check_hook, clamp_latents, latent_max, mean_difference,
                            project_out)
from tests.helpers import plus_minus_sae, save_tiny_model

# plus_minus_sae(3, 2): latents +e0, +e1, -e0, -e1. For x = (2, -1, 5) the code is (2, 0, 0, 1),
# the reconstruction (2, -1, 0) and the SAE error (0, 0, 5).
X = torch.tensor([[[2.0, -1.0, 5.0]]])


def test_each_intervention_by_hand():
    sae = plus_minus_sae(3, 2)
    assert torch.equal(sae.encode(X[0]), torch.tensor([[2.0, 0.0, 0.0, 1.0]]))
    assert clamp_latents(sae, [0], 4.0)(X).tolist() == [[[4.0, -1.0, 5.0]]]        # e0 set to 4, error kept
    assert clamp_latents(sae, [0, 3], [4.0, 3.0])(X).tolist() == [[[4.0, -3.0, 5.0]]]
    assert ablate_latents(sae, [3])(X).tolist() == [[[2.0, 0.0, 5.0]]]             # -e1 removed
    assert add_direction(torch.tensor([1.0, 1.0, 0.0]), 0.5)(X).tolist() == [[[2.5, -0.5, 5.0]]]
    assert project_out(torch.tensor([0.0, 0.0, 2.0]))(X).tolist() == [[[2.0, -1.0, 0.0]]]
    # positions: only the last position of a forward, or a mask
    x2 = torch.cat([X, X], 1)  # (1, 2, 3)
    assert add_direction(torch.ones(3), 1.0, "last")(x2).tolist() == [[[2.0, -1.0, 5.0], [3.0, 0.0, 6.0]]]
    mask = torch.tensor([[True, False]])
    assert ablate_latents(sae, [0], mask)(x2).tolist() == [[[0.0, -1.0, 5.0], [2.0, -1.0, 5.0]]]
    a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert mean_difference(a, b).tolist() == [1.5, 3.0]
    assert latent_max(sae, [torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 0.0]])]).tolist() == [2.0, 0.5, 3.0, 1.0]


def test_bad_inputs_are_one_line_errors(tmp_path):
    sae = plus_minus_sae(3, 2)
    with pytest.raises(ValueError, match=r"latent\(s\) \[4\] out of range: the SAE has 4 latents \(0..3\)"):
        clamp_latents(sae, [1, 4], 1.0)
    with pytest.raises(ValueError, match="3 clamp values for 2 latents; give one value or one per latent"):
        clamp_latents(sae, [0, 1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="positions must be 'all', 'last' or a"):
        add_direction(torch.ones(3), 1.0, "first")(X)
    with pytest.raises(ValueError, match=r"a position mask of shape \(1, 3\) for activations of shape \(1, 1\)"):
        add_direction(torch.ones(3), 1.0, torch.ones(1, 3, dtype=torch.bool))(X)
    with pytest.raises(ValueError, match=r"two \(N, d\) tensors of one shape"):
        mean_difference(torch.ones(2, 3), torch.ones(3, 3))
    bridge = load_bridge(save_tiny_model(tmp_path / "m"))
    with pytest.raises(ValueError, match="the model has no hook 'blocks.7.hook_resid_post'"):
        check_hook(bridge, "blocks.7.hook_resid_post")
    with pytest.raises(ValueError, match="the SAE reads d_in=3 but the model's d_model is 32"):
        check_hook(bridge, "blocks.1.hook_resid_post", sae)
    check_hook(bridge, "blocks.1.hook_resid_post", plus_minus_sae(32, 4))


def test_steering_in_generation_and_hooks_removed_after_an_error(tmp_path):
    from experiments.organisms.tokenizer import build_tokenizer

    bridge, tok = load_bridge(save_tiny_model(tmp_path / "m")), build_tokenizer()
    hook = "blocks.1.hook_resid_post"
    prompts = ["Q:3+4*2;", "Q:9-1;"]
    plain = generate_text(bridge, tok, prompts, 6)
    zero = generate_text(bridge, tok, prompts, 6, fwd_hooks=[(hook, add_direction(torch.ones(32), 0.0))])
    assert zero == plain
    d = torch.randn(32, generator=torch.Generator().manual_seed(0))
    pushed = generate_text(bridge, tok, prompts, 6, fwd_hooks=[(hook, add_direction(d, 50.0))])
    assert pushed != plain
    calls = []

    def dies(x, hook):
        calls.append(x.shape)
        if len(calls) == 3:  # mid-generation, after the prefill and one cached step
            raise RuntimeError("boom")
        return x

    with pytest.raises(RuntimeError, match="boom"):
        generate_text(bridge, tok, prompts, 6, fwd_hooks=[(hook, dies)])
    assert calls[0][1] > 1 and calls[1][1] == 1  # the prefill, then one position per step
    assert not bridge.hook_dict[hook].fwd_hooks  # nothing left attached
    assert generate_text(bridge, tok, prompts, 6) == plain


@pytest.mark.parametrize("rescale", [True, False])
def test_clamp_shortcut_equals_the_full_decode_for_a_trained_topk_sae(rescale):
    """The clamp adds (f' - f) @ W_dec[L] instead of decoding twice, and for a few TopK latents
    reads f_L by rank instead of a full top-k; for SAELens' TopK (which may decode
    f / ||W_dec||) both must agree with encode, clamp, decode, error added back."""
    from sae_lens import TopKSAE, TopKSAEConfig

    from features.steer import _topk_acts_at

    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=16, d_sae=64, k=4, rescale_acts_by_decoder_norm=rescale))
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(64, 1) + 0.5)  # decoder rows of unequal norms
        sae.b_enc.normal_()
    x = torch.randn(2, 5, 16)
    feats = sae.encode(x)
    assert torch.allclose(_topk_acts_at(sae, x, torch.arange(64)), feats, atol=1e-6)
    active = feats[0, 0].nonzero().flatten()[:2].tolist()  # latents that fire, and one that does not
    silent = int((feats[0, 0] == 0).nonzero()[0])
    for latents in (active + [silent], list(range(40))):  # the rank path, and the full encode (> 32 latents)
        target = torch.linspace(0.0, 2.0, len(latents))
        clamped = feats.clone()
        clamped[..., latents] = target
        full = sae.decode(clamped) + (x - sae.decode(feats))
        assert torch.allclose(clamp_latents(sae, latents, target)(x), full, atol=1e-5)
