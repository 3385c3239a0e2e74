"""The math of a verification, as pure functions of per-sample figures.

Convention (the house's): scores are higher = more member-like; labels 1 = forgotten, 0 = holdout.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _st


def truth_ratio(true_nll, false_nll) -> np.ndarray:
    """TOFU's truth ratio per question (Maini et al. 2024; OpenUnlearning's ``truth_ratio``):

    .. math:: R = \\frac{\\operatorname{mean}_j P(\\tilde a_j | q)^{1/|\\tilde a_j|}}{P(a | q)^{1/|a|}}
              = \\exp(\\bar\\ell_{true} - \\operatorname{mean}_j \\bar\\ell_{false, j})

    as OpenUnlearning computes it: per-token mean NLLs ``true_nll`` (n,) of the correct answer and
    ``false_nll`` (n, m) of m perturbed answers; the false NLLs are averaged before exponentiating.
    R < 1: the model prefers the truth (remembers); R near 1: indifferent.

    >>> truth_ratio([1.0], [[2.0, 4.0]]).round(4).tolist()  # exp(1 - 3)
    [0.1353]
    """
    t = np.asarray(true_nll, dtype=float)
    f = np.asarray(false_nll, dtype=float)
    if f.ndim != 2 or f.shape[0] != t.shape[0]:
        raise ValueError(f"false_nll must be (n, m) with n = {t.shape[0]}; got {f.shape}")
    return np.exp(t - f.mean(axis=1))


def forget_quality(tr_unlearned, tr_retrained) -> dict:
    """OpenUnlearning's Forget Quality: the two-sample Kolmogorov-Smirnov p-value between the
    unlearned and the retrained model's truth ratios on the forget set (scipy.stats.ks_2samp,
    two-sided, exact or asymptotic as scipy chooses). High = indistinguishable from retraining.

    >>> round(forget_quality([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])["p_value"], 4)
    1.0
    """
    r = _st.ks_2samp(np.asarray(tr_unlearned, dtype=float), np.asarray(tr_retrained, dtype=float))
    return {"p_value": float(r.pvalue), "ks_statistic": float(r.statistic), "n": [len(tr_unlearned), len(tr_retrained)]}


def auc(pos, neg) -> float:
    """Mann-Whitney AUC = P(s+ > s-) + 0.5 P(tie) (the same as :func:`rotelab.core.stats.roc_auc`)."""
    from rotelab.core.stats import roc_auc

    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    return roc_auc(np.concatenate([pos, neg]), np.r_[np.ones(len(pos)), np.zeros(len(neg))])


def oracle_distance(unlearned, retrained) -> float:
    """Bounded two-sided distance to the retrained oracle: ``2 |AUC - 0.5|`` where AUC separates
    the unlearned model's per-sample forget-set scores from the retrained model's.

    0 = indistinguishable from retraining; 1 = fully separable, in either direction (an
    over-unlearned model, scores far below the oracle's, is as far as an un-unlearned one).

    >>> oracle_distance([3.0, 4.0], [1.0, 2.0]), oracle_distance([1.0, 2.0], [3.0, 4.0]), oracle_distance([1.0, 3.0], [2.0, 2.0])
    (1.0, 1.0, 0.0)
    """
    return float(2 * abs(auc(unlearned, retrained) - 0.5))


def _boot_indices(n1: int, n0: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_boot, n1) and (n_boot, n0) resampling indices, forgotten and holdout drawn separately."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n1, (n_boot, n1)), rng.integers(0, n0, (n_boot, n0))


def _aucs(P: np.ndarray, N: np.ndarray) -> np.ndarray:
    """Row-wise Mann-Whitney AUCs of (B, n1) positives against (B, n0) negatives, through ranks."""
    ranks = _st.rankdata(np.concatenate([P, N], axis=1), axis=1)
    n1, n0 = P.shape[1], N.shape[1]
    return (ranks[:, :n1].sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def auc_bootstrap(pos, neg, *, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_boot,) bootstrap AUCs, forgotten and holdout resampled separately (as
    :func:`rotelab.core.stats.auc_bootstrap_ci`), vectorised through ranks of each resample."""
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    i, j = _boot_indices(len(pos), len(neg), n_boot, seed)
    return _aucs(pos[i], neg[j])


def auc_excess_p(pos, neg, *, delta: float = 0.05, n_boot: int = 2000, seed: int = 0) -> dict:
    """AUC, its 95% percentile-bootstrap interval, and the one-sided bootstrap p-value of
    H0: AUC <= 0.5 + delta, ``p = (1 + #{AUC_b <= 0.5 + delta}) / (B + 1)``.

    ``p <= 0.025`` exactly when the interval's lower end exceeds ``0.5 + delta`` (up to the +1).

    >>> r = auc_excess_p([5.0, 6, 7, 8], [1.0, 2, 3, 4], n_boot=200)
    >>> r["auc"], r["p_value"] < 0.025
    (1.0, True)
    """
    boot = auc_bootstrap(pos, neg, n_boot=n_boot, seed=seed)
    p = (1 + int((boot <= 0.5 + delta).sum())) / (n_boot + 1)
    return {"auc": auc(pos, neg), "auc_ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))], "p_value": float(p)}


def controlled_auc_excess_p(pos, neg, pos_control, neg_control, *, before=None, delta: float = 0.05, n_boot: int = 2000, seed: int = 0) -> dict:
    """An attack's forgotten-vs-holdout figure read against the control, the retrained oracle under
    the identical attack, on the same samples, put on the AUC scale. Two excesses:

    .. math:: E_{level} = AUC(att) - AUC(ctl_{att}), \qquad
              E_{change} = [AUC(att) - AUC(unl)] - [AUC(ctl_{att}) - AUC(ctl)]

    ``level``: the attacked model is more member-like on the forget set than the attacked oracle;
    ``change``: the attack raised that AUC by more than it raised the oracle's (difference in
    differences). With ``before = (pos_unl, neg_unl, pos_ctl, neg_ctl)`` (the two models' scores
    before the attack) the figure is ``A = 0.5 + min(E_level, E_change)``, an intersection-union
    test: it detects only when both excesses exceed delta, so neither a residual a direct attack
    already measures (large level, no change) nor an attack undoing over-unlearning (large change
    up to the oracle's level) reads as recovery. Without ``before``: ``A = 0.5 + E_level``.

    ``pos[k]`` and every other ``pos`` array score the same forget sample (``neg`` likewise,
    holdout). Paired bootstrap: each resample draws one set of forget and holdout indices for all
    arrays. p-value of H0: A <= 0.5 + delta, ``(1 + #{A_b <= 0.5 + delta}) / (B + 1)``, so the
    verdict rule reads it exactly as an uncontrolled AUC.

    >>> f, h = [5.0, 6, 7, 8], [1.0, 2, 3, 4]
    >>> r = controlled_auc_excess_p(f, h, f, h, n_boot=200)  # the attack does to both what it does
    >>> r["auc"], r["auc_ci"], r["raw_auc"], r["control_auc"], r["p_value"] > 0.9
    (0.5, [0.5, 0.5], 1.0, 1.0, True)
    >>> r = controlled_auc_excess_p(f, h, h, f, before=(f, h, h, f), n_boot=200)  # residual, not recovered
    >>> r["level"], r["change"], r["auc"]
    (1.0, 0.0, 0.5)
    """
    arrays = [np.asarray(x, dtype=float) for x in (pos, neg, pos_control, neg_control, *(before or ()))]
    if any(x.shape != arrays[k % 2].shape for k, x in enumerate(arrays)):
        raise ValueError(f"the control must score the same samples: shapes {[x.shape for x in arrays]}")
    i, j = _boot_indices(len(arrays[0]), len(arrays[1]), n_boot, seed)
    pairs = [(arrays[k], arrays[k + 1]) for k in range(0, len(arrays), 2)]  # att, ctl_att[, unl, ctl]
    full = [auc(p, n) for p, n in pairs]
    boots = [_aucs(p[i], n[j]) for p, n in pairs]

    def excess(a):
        level = a[0] - a[1]
        return (level, (a[0] - a[2]) - (a[1] - a[3])) if before is not None else (level, None)

    level, change = excess(full)
    bl, bc = excess(boots)
    stat = np.minimum(bl, bc) if before is not None else bl
    p = (1 + int((0.5 + stat <= 0.5 + delta).sum())) / (n_boot + 1)
    point = min(level, change) if before is not None else level
    out = {"auc": 0.5 + point, "auc_ci": [0.5 + float(np.quantile(stat, 0.025)), 0.5 + float(np.quantile(stat, 0.975))],
           "p_value": float(p), "raw_auc": full[0], "control_auc": full[1], "level": level, "change": change}
    if before is not None:
        out |= {"unlearned_auc": full[2], "control_before_auc": full[3]}
    return out


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): with p sorted ascending,
    ``p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``, returned in the input order.

    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def recovered_share(nll_original, nll_unlearned, nll_attacked, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Share of the original-vs-unlearned forget-set loss gap an attack recovers:

    .. math:: r = \\frac{\\bar L_{unl} - \\bar L_{att}}{\\bar L_{unl} - \\bar L_{orig}}

    over the same samples (mean per-sample NLLs), with a paired percentile-bootstrap interval
    (samples resampled jointly). 0 = nothing recovered, 1 = back to the original. None with a
    reason when unlearning opened no gap (``L_unl <= L_orig``).

    >>> recovered_share([1.0, 1.0], [3.0, 3.0], [2.0, 2.0])["share"]
    0.5
    """
    from rotelab.core.stats import paired_bootstrap_ci

    o, u, a = (np.asarray(x, dtype=float) for x in (nll_original, nll_unlearned, nll_attacked))

    def share(o, u, a):
        gap = u.mean() - o.mean()
        return (u.mean() - a.mean()) / gap if gap > 0 else np.nan

    s = share(o, u, a)
    if not np.isfinite(s):
        return {"share": None, "share_reason": "unlearning opened no forget-loss gap (unlearned loss <= original)", "ci": None}
    return {"share": float(s), "ci": paired_bootstrap_ci((o, u, a), share, n_boot=n_boot, seed=seed)}
