"""Distribution-shift check: can a bag-of-words classifier, with no model, tell the sets apart?

If it can (cross-validated AUC clearly above 0.5), attack AUCs may measure the shift between the
sets rather than memorization (WikiMIA's temporal shift is the known case; Das et al. 2024).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rotelab.core.stats import summarize

CONFOUND_AUC = 0.6  # lower CI bound above this: the sets differ in their words alone


def bag_of_words_scores(texts: Sequence[str], labels: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold P(member) from word-count logistic regression (stratified k-fold)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    y = np.asarray(labels).astype(int)
    n_splits = int(min(folds, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        return np.full(len(y), 0.5)
    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True), LogisticRegression(max_iter=1000, C=1.0))
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return cross_val_predict(clf, list(texts), y, cv=cv, method="predict_proba")[:, 1]


def confound_check(texts: Sequence[str], labels: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Summary of the bag-of-words classifier and a plain verdict."""
    s = bag_of_words_scores(texts, labels, seed=seed)
    out = summarize(s, labels, seed=seed)
    lo = (out.get("auc_ci") or [0.0, 0.0])[0]
    out["confounded"] = bool(lo is not None and lo > CONFOUND_AUC)
    out["verdict"] = (
        f"confounded: a bag-of-words classifier with no model separates the sets (AUC CI lower bound {lo:.2f} > {CONFOUND_AUC})"
        if out["confounded"]
        else f"no clear distribution shift: bag-of-words AUC CI lower bound {lo:.2f} <= {CONFOUND_AUC}"
    )
    return out
