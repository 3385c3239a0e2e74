"""Certify and falsify rho-robust memorization of ReLU MLPs on l2 balls.

f rho-robustly memorises D when argmax f(x') = y_i for all x' in B_2(x_i, mu), mu = rho eps_D.

* :func:`ibp_margin_lower`: interval bound propagation (Gowal et al. 2018), sound. Written here
  because auto_LiRPA (the maintained CROWN library) pins torch < 1.13 and cannot be installed
  beside torch 2.x; IBP on an MLP is a few lines.
* :func:`pgd_l2`: projected gradient ascent on the margin (Madry et al. 2018), a falsifier.
* :func:`box_indicator_net`: a net that robustly memorises by construction, for sanity checks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def mlp(d: int, width: int, depth: int, n_classes: int) -> nn.Sequential:
    """``depth`` hidden ReLU layers of ``width``; P = sum_l (d_{l-1} + 1) d_l."""
    dims = [d] + [width] * depth
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], n_classes))
    return nn.Sequential(*layers)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _linears(model: nn.Sequential) -> list[nn.Linear]:
    for m in model:
        assert isinstance(m, (nn.Linear, nn.ReLU)), f"IBP handles Linear/ReLU stacks; got {type(m).__name__}"
    return [m for m in model if isinstance(m, nn.Linear)]


def ibp_margin_lower(model: nn.Sequential, X: Tensor, y: Tensor, mu: float | Tensor) -> Tensor:
    """(B, C) lower bounds of z_y(x') - z_c(x') over x' in B_2(x, mu) (row y set to +inf).

    First layer exact on the l2 ball: centre W x + b, radius mu ||W_k||_2 per unit. Then boxes
    (midpoint m, radius r) pass ReLU (on endpoints) and Linear (W m + b, |W| r). The last layer
    bounds the margin row w = W_y - W_c directly: w.m - |w|.r + b_y - b_c (tighter than
    subtracting two logit intervals). Differentiable, so it also serves IBP training.
    """
    lin = _linears(model)
    m = X @ lin[0].weight.T + lin[0].bias  # (B, H)
    r = torch.as_tensor(mu, dtype=X.dtype).reshape(-1, 1) * lin[0].weight.norm(dim=1)  # (B or 1, H)
    for layer in lin[1:]:
        lo, hi = torch.relu(m - r), torch.relu(m + r)
        m, r = (hi + lo) / 2, (hi - lo) / 2
        if layer is lin[-1]:
            break
        m, r = m @ layer.weight.T + layer.bias, r @ layer.weight.abs().T
    W, b = lin[-1].weight, lin[-1].bias
    if len(lin) == 1:  # a linear classifier: the l2 ball bound is exact
        w = W[y][:, None, :] - W[None, :, :]  # (B, C, d)
        low = (w * X[:, None, :]).sum(-1) - torch.as_tensor(mu).reshape(-1, 1) * w.norm(dim=-1)
    else:
        w = W[y][:, None, :] - W[None, :, :]  # (B, C, H)
        low = (w * m[:, None, :]).sum(-1) - (w.abs() * r[:, None, :]).sum(-1)
    low = low + (b[y][:, None] - b[None, :])
    return low.masked_fill(nn.functional.one_hot(y, W.shape[0]).bool(), float("inf"))


@torch.no_grad()
def certify_ibp(model: nn.Sequential, X: Tensor, y: Tensor, mu: float) -> Tensor:
    """(B,) bool: every margin lower bound > 0, i.e. the whole ball is provably classified y."""
    return ibp_margin_lower(model, X, y, mu).min(dim=1).values > 0


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y - max_{c != y} z_c: negative means misclassified."""
    other = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return logits.gather(1, y[:, None]).squeeze(1) - other.max(dim=1).values


def _project(delta: Tensor, mu: float) -> Tensor:
    n = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return delta * torch.clamp(mu / n, max=1.0)


def pgd_l2(model: nn.Module, X: Tensor, y: Tensor, mu: float, *, steps: int = 50, restarts: int = 3, step_frac: float = 0.25, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Search B_2(x_i, mu) for a misclassified point: x' <- Pi(x' - eta g / ||g||), g = grad of
    the margin, eta = step_frac * mu, random start in the ball, several restarts.

    Returns (attacked (B,) bool, x_adv (B, d)): for attacked rows x_adv is misclassified and
    inside the ball; otherwise the lowest-margin point found.
    """
    gen = torch.Generator().manual_seed(seed)
    B, d = X.shape
    best_x, best_m = X.clone(), torch.full((B,), float("inf"))
    for _ in range(restarts):
        u = torch.randn(B, d, generator=gen)
        rad = mu * torch.rand(B, 1, generator=gen) ** (1 / d)
        delta = u / u.norm(dim=1, keepdim=True) * rad
        for _ in range(steps + 1):
            delta.requires_grad_(True)
            marg = _margin(model(X + delta), y)
            better = marg.detach() < best_m
            best_m = torch.where(better, marg.detach(), best_m)
            best_x = torch.where(better[:, None], (X + delta).detach(), best_x)
            (g,) = torch.autograd.grad(marg.sum(), delta)
            g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
            delta = _project(delta.detach() - step_frac * mu * g, mu)
    return best_m < 0, best_x


def box_indicator_net(X: np.ndarray, y: np.ndarray, r: float, n_classes: int | None = None) -> nn.Sequential:
    """Two hidden layers that classify every point of the l-inf box B_inf(x_i, r) as y_i.

    Layer 1 (2dN ReLUs): a_jk = relu(x_k - x_jk - r), b_jk = relu(x_jk - r - x_k); h_j = sum_k
    (a_jk + b_jk) is 0 inside box j and >= delta inside any box of another label, delta =
    :func:`box_gap` > 0. Layer 2 (N ReLUs): u_j = relu(1 - h_j / delta). Output s_c = sum_{y_j=c} u_j,
    so s_{y_i} >= 1 and s_c = 0 (c != y_i) on box i. With r >= mu each box contains the l2 ball.
    """
    from rotelab.capacity.robust.data import box_gap

    n, d = X.shape
    C = int(n_classes or y.max() + 1)
    delta = box_gap(X, y, r)
    assert delta > 0, f"boxes of radius {r} overlap across labels (gap {delta})"
    net = nn.Sequential(nn.Linear(d, 2 * d * n), nn.ReLU(), nn.Linear(2 * d * n, n), nn.ReLU(), nn.Linear(n, C))
    eye = np.eye(d)
    W1 = np.concatenate([np.concatenate([eye, -eye]) for _ in range(n)])  # (2dN, d)
    b1 = np.concatenate([np.concatenate([-(X[j] + r), X[j] - r]) for j in range(n)])
    W2 = np.kron(np.eye(n), np.ones((1, 2 * d))) * (-1.0 / delta)  # (N, 2dN)
    W3 = (np.arange(C)[:, None] == y[None, :]).astype(float)  # (C, N)
    with torch.no_grad():
        for layer, W, b in ((net[0], W1, b1), (net[2], W2, np.ones(n)), (net[4], W3, np.zeros(C))):
            layer.weight.copy_(torch.as_tensor(W, dtype=torch.float64))
            layer.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return net
