"""Adversarial (PGD-l2) and certified (IBP) training of ReLU MLPs to robustly memorise D.

IBP training (Gowal et al. 2018): loss = kappa CE(z(x), y) + (1 - kappa) CE(-lower margins, y),
with the radius ramped linearly from 0 to mu over the first half of training.
PGD training (Madry et al. 2018): loss = CE at the PGD-l2 point of each ball.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rotelab.capacity.robust.verify import certify_ibp, ibp_margin_lower, mlp, n_params, pgd_l2
from rotelab.capacity.search import one_thread


@dataclass(frozen=True)
class RobustTrainConfig:
    mode: str = "ibp"  # ibp (certified) | pgd (adversarial)
    steps: int = 1500
    lr: float = 5e-3
    kappa: float = 0.5  # weight of the clean loss in IBP training
    pgd_steps: int = 10  # inner attack steps during PGD training
    check_every: int = 100


def _ibp_loss(model: nn.Sequential, X: Tensor, y: Tensor, mu: float, kappa: float) -> Tensor:
    worst = -ibp_margin_lower(model, X, y, mu).clamp(max=1e4)  # row y: -inf -> logit 0 below
    worst = worst.masked_fill(F.one_hot(y, worst.shape[1]).bool(), 0.0)
    return kappa * F.cross_entropy(model(X), y) + (1 - kappa) * F.cross_entropy(worst, y)


def train_robust(X: Tensor, y: Tensor, mu: float, *, width: int, depth: int, n_classes: int, seed: int,
                 cfg: RobustTrainConfig = RobustTrainConfig()) -> tuple[nn.Sequential, dict]:
    """Train one MLP; stop early once IBP certifies every ball at the full radius ``mu``.

    Returns the model and ``params``, ``certified`` (share), ``steps``.
    """
    with one_thread():
        return _train(X, y, mu, width=width, depth=depth, n_classes=n_classes, seed=seed, cfg=cfg)


def _train(X: Tensor, y: Tensor, mu: float, *, width: int, depth: int, n_classes: int, seed: int,
           cfg: RobustTrainConfig) -> tuple[nn.Sequential, dict]:
    torch.manual_seed(seed)
    model = mlp(X.shape[1], width, depth, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ramp = max(1, cfg.steps // 2)
    step, cert = 0, 0.0
    for step in range(1, cfg.steps + 1):
        eps = mu * min(1.0, step / ramp)
        if cfg.mode == "ibp":
            loss = _ibp_loss(model, X, y, eps, cfg.kappa)
        else:
            _, x_adv = pgd_l2(model, X, y, eps, steps=cfg.pgd_steps, restarts=1, seed=step)
            loss = F.cross_entropy(model(x_adv), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= ramp and (step % cfg.check_every == 0 or step == cfg.steps):
            cert = float(certify_ibp(model, X, y, mu).float().mean())
            if cert == 1.0:
                break
    return model, {"params": n_params(model), "certified": cert, "steps": step}
