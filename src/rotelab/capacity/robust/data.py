"""Data with a controlled separation for robust memorization (Kim, Moon, Yun, NeurIPS 2025,
arXiv 2510.24643).

eps_D = 1/2 min{ ||x_i - x_j||_2 : y_i != y_j };  robustness radius mu = rho * eps_D, rho in (0, 1).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def separation(X: np.ndarray, y: np.ndarray) -> float:
    """eps_D: half the smallest l2 distance between points of different labels."""
    D = cdist(X, X)
    diff = y[:, None] != y[None, :]
    return float(D[diff].min() / 2) if diff.any() else float("inf")


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_classes)


def separated_points(n: int, d: int, *, eps_d: float = 1.0, n_classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N standard-normal points in R^d with balanced random labels, rescaled so that eps_D = eps_d."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = _balanced_labels(n, n_classes, rng)
    return X * (eps_d / separation(X, y)), y


def orthogonal_frame(n: int, d: int, *, eps_d: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Worst-case-like frame: +-s e_k (k < d), labels alternating over k and flipped for -e_k.

    Every pair is orthogonal or antipodal, so eps_D = s / sqrt(2) for N >= 3; s is set to give
    ``eps_d``. The first term of Thm 3.1, rho^2 min(N, d) d, is driven by such frames.
    """
    if not 2 <= n <= 2 * d:
        raise ValueError(f"orthogonal_frame needs 2 <= n <= 2d = {2 * d}; got n={n}")
    k = np.arange(n) % d
    sign = np.where(np.arange(n) < d, 1.0, -1.0)
    X = np.zeros((n, d))
    X[np.arange(n), k] = sign
    y = (k % 2 + (sign < 0)) % 2
    return X * (eps_d / separation(X, y)), y


def lattice_points(n: int, d: int, *, spacing: float = 1.0, grid: int = 4, n_classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N distinct points of the lattice spacing * {0 .. grid-1}^d with balanced random labels:
    every two points differ by >= spacing in some coordinate, so l-inf boxes of radius
    r < spacing/2 around them are disjoint (the data the box-indicator construction needs)."""
    if grid**d < n:
        raise ValueError(f"lattice has {grid ** d} points < n={n}")
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < n:
        seen.add(tuple(int(v) for v in rng.integers(0, grid, d)))
    X = np.array(sorted(seen), dtype=float) * spacing
    return X, _balanced_labels(n, n_classes, rng)


def box_gap(X: np.ndarray, y: np.ndarray, r: float) -> float:
    """min over pairs of different labels of sum_k max(0, |x_ik - x_jk| - 2r): positive iff the
    l-inf boxes of radius r around points of different labels are pairwise disjoint."""
    gaps = np.clip(np.abs(X[:, None, :] - X[None, :, :]) - 2 * r, 0, None).sum(-1)
    diff = y[:, None] != y[None, :]
    return float(gaps[diff].min()) if diff.any() else float("inf")
