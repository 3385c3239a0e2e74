"""The configuration of ``rotelab capacity robust`` and the checks of its options and of
``capacity bounds`` (no torch: the command line reads its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass

from rotelab.capacity.checks import at_least, each_at_least, each_between, one_of
from rotelab.errors import RotelabError

DATASETS = ("random", "frame")
MODES = ("ibp", "pgd")


@dataclass(frozen=True)
class RobustConfig:
    n: int = 32
    d: int = 8
    dataset: str = "random"  # random (rescaled Gaussian points) | frame (orthogonal frame, N <= 2d)
    rhos: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    widths: tuple[int, ...] = (4, 8, 16, 32, 64)
    depths: tuple[int, ...] = (1, 2)
    seeds: tuple[int, ...] = (0, 1)
    mode: str = "ibp"
    steps: int = 1500
    lr: float = 5e-3
    pgd_steps: int = 50
    pgd_restarts: int = 3


def check_bounds(n: int, d: int, rho: float) -> None:
    """N >= 1 points in d >= 1 dimensions, rho = mu / eps_D in (0, 1)."""
    at_least("--n", n, 1)
    at_least("--d", d, 1)
    each_between("--rho", (rho,), 0, 1)


def check_robust(cfg: RobustConfig) -> RobustConfig:
    at_least("--n", cfg.n, 2)
    at_least("--d", cfg.d, 1)
    one_of("--dataset", cfg.dataset, DATASETS)
    if cfg.dataset == "frame" and cfg.n > 2 * cfg.d:
        raise RotelabError(f"--dataset frame needs --n <= 2 * --d = {2 * cfg.d}; got --n {cfg.n}")
    each_between("--rhos", cfg.rhos, 0, 1)
    each_at_least("--widths", cfg.widths, 1)
    each_at_least("--depths", cfg.depths, 1)
    each_at_least("--seeds", cfg.seeds, 0)
    one_of("--mode", cfg.mode, MODES)
    for option, value in (("--steps", cfg.steps), ("pgd_steps", cfg.pgd_steps), ("pgd_restarts", cfg.pgd_restarts)):
        at_least(option, value, 1)
    if not cfg.lr > 0:
        raise RotelabError(f"lr must be > 0; got {cfg.lr}")
    return cfg
