"""Matrix-based entropy (MBE) of token representations; pure, batched, differentiable torch.

For a patch Z (P tokens x D dims), G = Z Zᵀ (not centred, not row-normalised), K = G / tr G.
Rényi order alpha of K's eigenvalues λ:  H_α = log(Σ λ^α) / (1 − α);  α → 1: −Σ λ log λ.
For α = 2 no eigendecomposition is needed:  H₂ = −log tr K² = 2 log tr G − log ‖G‖_F².
Range 0 (rank 1) ... log P (P orthogonal rows of equal norm).

References
----------
1. F. Yu, "Memorization-Compression Cycles Improve Generalization", arXiv 2505.08727 (2025);
   the α = 2 form and ε follow the author's code (fangyuan-ksgk/mod_gpt).
2. L. G. Sanchez Giraldo, M. Rao, J. C. Principe, "Measures of entropy from data using infinitely
   divisible kernels", IEEE Trans. Inf. Theory (2015).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-5  # inside both logs, as in the author's code (absolute: its bias grows as the norms shrink)


def mbe_alpha2(z: Tensor, *, eps: float = EPS, detach_trace: bool = False) -> Tensor:
    """Rényi-2 matrix entropy of each patch: 2·log(tr G + ε) − log(‖G‖_F² + ε), clamped at 0.

    Parameters
    ----------
    z : Tensor, shape (..., P, D)
        Patches of P token representations.
    eps : float, default 1e-5
    detach_trace : bool, default False
        Stop the gradient through tr G (it then flows only through ‖G‖_F²), an option of the code.

    Returns
    -------
    Tensor, shape (...): entropy in nats.

    Notes
    -----
    ε is absolute, as in the author's code, so the value is not scale-invariant for small norms:
    its bias against the exact 2 log tr G − log ‖G‖_F² is 2 log(1 + ε/tr G) − log(1 + ε/‖G‖_F²)
    ≈ 2ε/tr G − ε/‖G‖_F². It is below 1e-5 nats for hidden states of unit-order norm (trained
    models: tr G ≳ P) and about −2e-3 nats for the states of a freshly initialised model (embedding
    std 0.02: tr G ≈ 0.2 for P = 8, D = 64). Kept for fidelity to the author's training
    objective; pass ``eps=0`` for the exact value (a rank-0 patch then gives NaN).

    >>> round(mbe_alpha2(torch.eye(8)).item(), 3)   # log 8
    2.079
    """
    z = z.float()
    P, D = z.shape[-2:]
    # ‖ZZᵀ‖_F = ‖ZᵀZ‖_F (dual form): use the smaller Gram.
    g = z @ z.transpose(-1, -2) if P <= D else z.transpose(-1, -2) @ z
    tr = (z * z).sum(dim=(-1, -2))
    if detach_trace:
        tr = tr.detach()
    fro2 = (g * g).sum(dim=(-1, -2))
    return (2 * torch.log(tr + eps) - torch.log(fro2 + eps)).clamp_min(0.0)


def matrix_renyi(z: Tensor, alpha: float = 2.0, *, eps: float = EPS) -> Tensor:
    """Rényi entropy of order ``alpha`` of K = G / tr G via its eigenvalues; shape (..., P, D) -> (...).

    Eigenvalues are clipped at ``eps`` before powers and logs (G is PSD; round-off gives tiny
    negatives). alpha = 1 gives the von Neumann entropy −Σ λ log λ.

    >>> round(matrix_renyi(torch.eye(4), alpha=1.0).item(), 3)  # log 4
    1.386
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0; got {alpha}")
    z = z.double()  # eigh in float64: cheap at patch sizes, and exact enough to cross-check α = 2
    g = z @ z.transpose(-1, -2)
    k = g / (g.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] + 1e-30)
    lam = torch.linalg.eigvalsh(k).clamp_min(0.0)
    if abs(alpha - 1.0) < 1e-9:
        lam = lam.clamp_min(eps)
        out = -(lam * lam.log()).sum(-1)
    else:
        out = torch.log((lam**alpha).sum(-1).clamp_min(eps)) / (1.0 - alpha)
    return out.clamp_min(0.0).float()


def patches(h: Tensor, patch: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Cut (B, S, D) into (B, S // patch, patch, D), dropping the remainder of S.

    Returns the patches and a (B, S // patch) bool of patches wholly inside ``mask`` (B, S).
    """
    B, S, D = h.shape
    n = S // patch
    zs = h[:, : n * patch].reshape(B, n, patch, D)  # (B, n, P, D)
    if mask is None:
        return zs, torch.ones(B, n, dtype=torch.bool, device=h.device)
    valid = mask[:, : n * patch].reshape(B, n, patch).bool().all(-1)  # (B, n)
    return zs, valid


def patch_mbe(h: Tensor, *, patch: int = 8, alpha: float = 2.0, mask: Tensor | None = None, reduce: bool = True) -> Tensor:
    """MBE of hidden states (B, S, D): entropy per patch of ``patch`` consecutive tokens, averaged.

    Patches touching padding (``mask`` 0) are left out. ``reduce=False`` returns the per-sequence
    mean (B,) (NaN for a sequence shorter than one patch); otherwise the mean over all valid
    patches (NaN if there is none).
    """
    if patch < 2:
        raise ValueError(f"patch must be >= 2; got {patch}")
    zs, valid = patches(h, patch, mask)
    ent = mbe_alpha2(zs) if alpha == 2.0 else matrix_renyi(zs, alpha)  # (B, n)
    w = valid.to(ent.dtype)
    if reduce:
        return (ent * w).sum() / w.sum() if w.sum() > 0 else ent.new_tensor(float("nan"))
    return (ent * w).sum(-1) / w.sum(-1)  # 0/0 = NaN for too-short sequences
