"""REMIND's classifier: standardised multinomial logistic regression over retained / forgotten /
holdout, scored out of fold (stratified k-fold: every sample is scored by the fold model that
never saw it). Headline: forgotten vs holdout (score = P(forgotten) / (P(forgotten) + P(holdout)));
the 3-way figures the paper reports (macro and per-state one-vs-rest AUC, confusion matrix) are
secondary (retained samples are easy, which inflates them).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from rotelab.core.stats import summarize

STATES = ("retained", "forgotten", "holdout")


def _pipeline(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def assign_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified fold of each sample (at most as many folds as the smallest state has samples)."""
    from sklearn.model_selection import StratifiedKFold

    n = int(min(folds, np.bincount(y).min()))
    fold = np.empty(len(y), dtype=int)
    for f, (_, test) in enumerate(StratifiedKFold(n_splits=n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)):
        fold[test] = f
    return fold


def cv_proba(X: np.ndarray, y: np.ndarray, fold: np.ndarray, C: float, *, make: "Callable[[], Any] | None" = None) -> np.ndarray:
    """(N, 3) out-of-fold class probabilities: no sample is in both fit and score. ``make``
    builds another scikit-learn classifier in place of REMIND's logistic regression (ablations)."""
    P = np.zeros((len(y), len(STATES)))
    for f in np.unique(fold):
        tr, te = fold != f, fold == f
        clf = (make() if make else _pipeline(C)).fit(X[tr], y[tr])
        P[np.ix_(te, clf.classes_)] = clf.predict_proba(X[te])
    return P


def fit_proba(X: np.ndarray, y: np.ndarray, X_new: np.ndarray, C: float) -> np.ndarray:
    """(M, 3) class probabilities of new samples from a classifier fitted on all of (X, y)."""
    clf = _pipeline(C).fit(X, y)
    P = np.zeros((len(X_new), len(STATES)))
    P[:, clf.classes_] = clf.predict_proba(X_new)
    return P


def class_metrics(P: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The paper's 3-way figures: macro one-vs-rest AUC, each state's one-vs-rest AUC, and the
    confusion matrix of the most probable state (``{true: {predicted: count}}``).

    AUC_c = AUC(P[:, c] for samples of state c vs the rest); macro = mean_c AUC_c (scikit-learn's
    ``multi_class="ovr", average="macro"``). Undefined (None, with a reason) unless all three
    states are present.

    >>> P = np.array([[.8, .1, .1], [.2, .45, .35], [.1, .6, .3], [.1, .2, .7]])
    >>> m = class_metrics(P, np.array([0, 1, 2, 2]))  # holdout: .3 beats .1, not .35; .7 beats both
    >>> {k: round(v, 4) for k, v in m["auc_per_class"].items()}, round(m["auc_3way_macro"], 4)
    ({'retained': 1.0, 'forgotten': 0.6667, 'holdout': 0.75}, 0.8056)
    >>> m["confusion_matrix"]["holdout"]
    {'retained': 0, 'forgotten': 1, 'holdout': 1}
    """
    from sklearn.metrics import confusion_matrix, roc_auc_score

    if len(np.unique(y)) < len(STATES):
        return {"auc_3way_macro": None, "auc_3way_macro_reason": "needs all three states"}
    Q = P / P.sum(1, keepdims=True)
    labels = list(range(len(STATES)))
    cm = confusion_matrix(y, Q.argmax(1), labels=labels)
    return {
        "auc_3way_macro": float(roc_auc_score(y, Q, multi_class="ovr", average="macro", labels=labels)),
        "auc_per_class": {st: float(roc_auc_score(y == i, Q[:, i])) for i, st in enumerate(STATES)},
        "confusion_matrix": {st: {p: int(cm[i, j]) for j, p in enumerate(STATES)} for i, st in enumerate(STATES)},
    }


def state_metrics(P: np.ndarray, y: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Forgotten-vs-holdout AUC and TPR@1%FPR with intervals, and the 3-way figures (:func:`class_metrics`)."""
    F, H = STATES.index("forgotten"), STATES.index("holdout")
    fh = (y == F) | (y == H)
    score = P[fh, F] / np.maximum(P[fh, F] + P[fh, H], 1e-12)
    s = summarize(score, (y[fh] == F).astype(int), seed=seed)
    out = {
        "auc_forgotten_vs_holdout": s["auc"],
        "auc_forgotten_vs_holdout_ci": s["auc_ci"],
        "tpr_at_1pct_fpr_forgotten_vs_holdout": s["tpr_at_1pct_fpr"],
        "tpr_at_1pct_fpr_forgotten_vs_holdout_ci": s["tpr_at_1pct_fpr_ci"],
        "n": {st: int((y == i).sum()) for i, st in enumerate(STATES)},
    }
    if "tpr_at_1pct_fpr_reason" in s:
        out["tpr_at_1pct_fpr_forgotten_vs_holdout_reason"] = s["tpr_at_1pct_fpr_reason"]
    return out | class_metrics(P, y)
