"""IBP is sound, PGD finds real counterexamples, the box-indicator net is certified."""

import numpy as np
import pytest
import torch

from rotelab.capacity.robust.data import box_gap, lattice_points, orthogonal_frame, separated_points, separation
from rotelab.capacity.robust.verify import box_indicator_net, certify_ibp, ibp_margin_lower, mlp, pgd_l2


def _ball_samples(x: torch.Tensor, mu: float, k: int, gen: torch.Generator) -> torch.Tensor:
    u = torch.randn(k, x.shape[0], generator=gen)
    return x + u / u.norm(dim=1, keepdim=True) * mu * torch.rand(k, 1, generator=gen)


def test_separation_is_half_the_closest_cross_label_distance():
    X = np.array([[0.0, 0], [3, 0], [0, 4], [1, 0]])
    y = np.array([0, 1, 1, 0])
    assert separation(X, y) == 1.0  # (1,0) to (3,0) is 2
    Xs, ys = separated_points(20, 5, eps_d=0.7, seed=1)
    assert separation(Xs, ys) == pytest.approx(0.7)
    Xf, yf = orthogonal_frame(10, 6, eps_d=1.0)
    assert separation(Xf, yf) == pytest.approx(1.0) and set(yf) == {0, 1}


def test_box_indicator_net_is_certified_and_unbroken():
    X, y = lattice_points(12, 3, spacing=1.0, grid=3, seed=0)
    mu = 0.45  # boxes of radius mu contain the l2 balls and stay disjoint (spacing 1)
    assert box_gap(X, y, mu) > 0
    net = box_indicator_net(X, y, mu)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    assert certify_ibp(net, Xt, yt, mu).all()
    attacked, _ = pgd_l2(net, Xt, yt, mu, steps=20, restarts=2)
    assert not attacked.any()


def test_ibp_lower_bound_never_exceeds_a_margin_inside_the_ball():
    torch.manual_seed(0)
    net = mlp(4, 16, 2, 3)
    X, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    mu = 0.3
    low = ibp_margin_lower(net, X, y, mu)
    gen = torch.Generator().manual_seed(1)
    for i in range(10):
        z = net(_ball_samples(X[i], mu, 200, gen))
        true = z[:, y[i]][:, None] - z  # (200, C); column y is 0 - bound +inf by convention
        other = torch.arange(3) != y[i]
        assert (low[i][None, other] <= true[:, other] + 1e-5).all()


def test_ibp_is_exact_for_a_linear_classifier():
    net = mlp(2, 0, 0, 2)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net[0].bias.zero_()
    X, y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    # margin 2 x_1 over the ball: min at x_1 = 1 - mu
    assert ibp_margin_lower(net, X, y, 0.25)[0, 1].item() == pytest.approx(1.5)


def test_pgd_counterexample_is_real_and_never_certified():
    torch.manual_seed(3)
    net = mlp(3, 8, 1, 2)
    X, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    mu = 0.5
    attacked, x_adv = pgd_l2(net, X, y, mu, steps=30, restarts=2)
    assert attacked.any()
    assert ((x_adv - X).norm(dim=1)[attacked] <= mu + 1e-5).all()
    assert (net(x_adv).argmax(1)[attacked] != y[attacked]).all()
    assert not (certify_ibp(net, X, y, mu) & attacked).any()
