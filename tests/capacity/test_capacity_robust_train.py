"""Adversarial (PGD) training reaches a net PGD cannot break; IBP training's certificate holds."""

import torch

from rotelab.capacity.robust.data import separated_points
from rotelab.capacity.robust.train import RobustTrainConfig, train_robust
from rotelab.capacity.robust.verify import certify_ibp, pgd_l2


def _data():
    X, y = separated_points(8, 2, seed=0)  # eps_D = 1
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def test_pgd_training_resists_a_fresh_attack():
    X, y = _data()
    model, rec = train_robust(X, y, 0.5, width=16, depth=1, n_classes=2, seed=0, cfg=RobustTrainConfig(mode="pgd", steps=200, pgd_steps=5))
    attacked, _ = pgd_l2(model, X, y, 0.5, steps=20, restarts=2, seed=7)
    assert (model(X).argmax(1) == y).all() and not attacked.any()


def test_ibp_training_reports_the_share_it_certifies():
    X, y = _data()
    model, rec = train_robust(X, y, 0.5, width=16, depth=1, n_classes=2, seed=0, cfg=RobustTrainConfig(mode="ibp", steps=200))
    assert rec["certified"] == float(certify_ibp(model, X, y, 0.5).float().mean()) == 1.0
    assert rec["params"] == (2 + 1) * 16 + (16 + 1) * 2
