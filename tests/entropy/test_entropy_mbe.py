import math

import pytest
import torch

from rotelab.entropy.mbe import matrix_renyi, mbe_alpha2, patch_mbe


def test_alpha2_closed_form_matches_eigenvalues_batched():
    torch.manual_seed(0)
    z = torch.randn(4, 3, 8, 16)
    assert torch.allclose(mbe_alpha2(z), matrix_renyi(z, alpha=2.0), atol=1e-4)


def test_dual_form_used_when_patch_is_wider_than_dims():
    torch.manual_seed(1)
    z = torch.randn(5, 8, 3)  # P > D: the D x D Gram is used
    assert torch.allclose(mbe_alpha2(z), matrix_renyi(z, alpha=2.0), atol=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_rank_one_patch_has_zero_entropy(alpha):
    z = torch.randn(1, 12).repeat(8, 1) * torch.arange(1.0, 9.0)[:, None]  # rows all multiples of one vector
    assert matrix_renyi(z, alpha=alpha).item() == pytest.approx(0.0, abs=1e-3)
    if alpha == 2.0:
        assert mbe_alpha2(z).item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_orthogonal_equal_norm_rows_give_log_n(alpha):
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    z = 3.0 * q[:8]  # 8 orthonormal rows, scaled equally
    assert matrix_renyi(z, alpha=alpha).item() == pytest.approx(math.log(8), abs=1e-4)
    assert mbe_alpha2(z).item() == pytest.approx(math.log(8), abs=1e-4)


def test_renyi_entropy_does_not_increase_with_order():
    torch.manual_seed(2)
    z = torch.randn(8, 6) @ torch.diag(torch.tensor([5.0, 2, 1, 0.5, 0.2, 0.1]))
    hs = [matrix_renyi(z, alpha=a).item() for a in (0.5, 1.0, 2.0, 4.0)]
    assert all(a >= b - 1e-6 for a, b in zip(hs, hs[1:])) and hs[0] > hs[-1]


def test_scale_invariant():
    z = torch.randn(2, 8, 10)
    assert torch.allclose(mbe_alpha2(z), mbe_alpha2(7.0 * z), atol=1e-5)


def test_gradient_flows_through_patch_mbe():
    h = torch.randn(2, 16, 10, requires_grad=True)
    patch_mbe(h).backward()
    assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0


def test_detached_trace_changes_the_gradient_not_the_value():
    z = torch.randn(8, 10, requires_grad=True)
    z2 = z.detach().clone().requires_grad_(True)
    a, b = mbe_alpha2(z), mbe_alpha2(z2, detach_trace=True)
    assert a.item() == pytest.approx(b.item())
    a.backward(), b.backward()
    assert not torch.allclose(z.grad, z2.grad)


def test_patches_touching_padding_and_the_remainder_are_dropped():
    torch.manual_seed(3)
    h = torch.randn(1, 20, 6)
    mask = torch.ones(1, 20, dtype=torch.long)
    mask[0, 12:] = 0  # second patch (8..15) touches padding; 16..19 is a remainder
    expected = mbe_alpha2(h[0, :8])
    assert patch_mbe(h, mask=mask).item() == pytest.approx(expected.item(), abs=1e-6)
    assert patch_mbe(h).item() == pytest.approx(mbe_alpha2(h[0, :16].reshape(2, 8, 6)).mean().item(), abs=1e-6)


def test_sequence_shorter_than_a_patch_is_nan_not_zero():
    out = patch_mbe(torch.randn(2, 5, 4), reduce=False)
    assert torch.isnan(out).all()
    assert torch.isnan(patch_mbe(torch.randn(2, 5, 4)))


def test_general_alpha_path_in_patch_mbe():
    h = torch.randn(1, 16, 12)
    assert patch_mbe(h, alpha=2.0).item() == pytest.approx(patch_mbe(h, alpha=2.0 + 1e-9).item(), abs=1e-3)


def test_epsilon_bias_is_the_documented_one_and_vanishes_at_unit_norms():
    """ε = 1e-5 is absolute (the author's code): at a random-init model's hidden-state norms it
    biases H₂ by 2 log(1 + ε/tr G) − log(1 + ε/‖G‖_F²), about −2e-3 nats; at unit norms, < 1e-5."""
    torch.manual_seed(3)
    z = torch.randn(4, 8, 64, dtype=torch.float64)  # 4 patches, P = 8, D = 64
    exact = matrix_renyi(z, alpha=2.0).double()  # eigenvalues of G / tr G: no ε reaches the α = 2 value
    assert torch.allclose(mbe_alpha2(z, eps=0.0).double(), exact, atol=1e-5)
    assert (mbe_alpha2(z).double() - exact).abs().max() < 1e-5  # unit-order norms: tr G ≈ 512
    small = 0.02 * z  # GPT-2's embedding init std
    g = small @ small.transpose(-1, -2)
    tr, fro2 = g.diagonal(dim1=-2, dim2=-1).sum(-1), (g * g).sum((-1, -2))
    predicted = 2 * torch.log1p(1e-5 / tr) - torch.log1p(1e-5 / fro2)
    bias = mbe_alpha2(small).double() - exact
    assert torch.allclose(bias, predicted, atol=2e-6)  # float32 round-off of the value itself
    assert (-3e-3 < bias).all() and (bias < -1e-3).all()
