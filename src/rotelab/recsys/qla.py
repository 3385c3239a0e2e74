"""Quasi-linear attention (QLA), the cost-linear attention of VISTA's stage 1.

For queries q, keys k and values v split into heads, with feature map phi(x) = elu(x) + 1
(Katharopoulos et al. 2020, "Transformers are RNNs"), a query attends to the keys it may see:

    o_t = phi(q_t)^T (sum_{j visible} phi(k_j) v_j^T) / (phi(q_t)^T sum_{j visible} phi(k_j))

The sums are a d x d state and a d-vector, built once in O(N d^2) and additive over events, so a
summary can be computed in streamed chunks and refreshed as events arrive. Two masks are used:

- *target mask* (HSTU ``num_targets``): each target (a VISTA seed or a candidate) sees the whole
  history plus itself only -- the "diagonal self term"; targets never see each other;
- *causal with a prefix*: position t sees a fully visible prefix memory and positions <= t
  (the reconstruction decoder conditioned on the summary); running sums via ``cumsum``.

VISTA's summarizer uses the target form with a *routing* feature map (softmax over the S seeds,
passed precomputed with ``fmap=identity``; see :class:`rotelab.recsys.models.Summarizer`).
:func:`masked_reference` is the O(N^2) form both are tested against. The VISTA paper
(Chen et al. 2025, arXiv 2510.22049) does not publish its kernel or normaliser; this is
rotelab's reconstruction (see ``shared/research/recsys_vista.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def phi(x: torch.Tensor) -> torch.Tensor:
    """Positive feature map elu(x) + 1."""
    return F.elu(x) + 1.0


def identity(x: torch.Tensor) -> torch.Tensor:
    """Feature map for inputs that already are features (VISTA's seed routing, see models.py)."""
    return x


def history_state(k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, *, fmap=phi) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive history state: S = sum_j phi(k_j) v_j^T, z = sum_j phi(k_j).

    k: (B, H, N, m), v: (B, H, N, dv); mask: (B, N) bool (True = real event) or float weights.
    Returns S (B, H, m, dv), z (B, H, m). ``fmap`` is the feature map phi.
    """
    fk = fmap(k)
    if mask is not None:
        fk = fk * mask[:, None, :, None].to(fk.dtype)
    return torch.einsum("bhnd,bhne->bhde", fk, v), fk.sum(dim=2)


def qla_targets(q: torch.Tensor, k_self: torch.Tensor, v_self: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], *, fmap=phi) -> torch.Tensor:
    """Targets attend to the history state plus themselves (target mask).

    q, k_self: (B, H, T, m), v_self: (B, H, T, dv); state from :func:`history_state` with the same
    ``fmap``. Returns (B, H, T, dv).
    """
    S, z = state
    fq, fks = fmap(q), fmap(k_self)
    self_w = (fq * fks).sum(-1, keepdim=True)  # (B, H, T, 1): the diagonal self term
    num = torch.einsum("bhtd,bhde->bhte", fq, S) + self_w * v_self
    den = torch.einsum("bhtd,bhd->bht", fq, z)[..., None] + self_w
    return num / (den + EPS)


def qla_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Causal QLA with running sums: position t sees ``prefix`` (a state) and positions <= t.

    q, k, v: (B, H, T, dh). Memory O(T dh^2) per head; meant for short decoder sequences.
    """
    fq, fk = phi(q), phi(k)
    S_run = torch.cumsum(torch.einsum("bhtd,bhte->bhtde", fk, v), dim=2)  # (B, H, T, dh, dh)
    z_run = torch.cumsum(fk, dim=2)
    if prefix is not None:
        S_run = S_run + prefix[0][:, :, None]
        z_run = z_run + prefix[1][:, :, None]
    num = torch.einsum("bhtd,bhtde->bhte", fq, S_run)
    den = (fq * z_run).sum(-1, keepdim=True)
    return num / (den + EPS)


def masked_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """O(N^2) reference: A = (phi(q) phi(k)^T) * visible, rows normalised, times v.

    q: (B, H, T, dh); k, v: (B, H, N, dh); visible: (T, N) or (B, T, N) bool.
    """
    a = torch.einsum("bhtd,bhnd->bhtn", phi(q), phi(k))
    vis = visible if visible.dim() == 3 else visible[None]
    a = a * vis[:, None].to(a.dtype)
    return torch.einsum("bhtn,bhnd->bhtd", a, v) / (a.sum(-1, keepdim=True) + EPS)
