"""T3 embedding probe (Tonekaboni et al. 2025; peer ``embedding_memorization/probing_test.py``).

The embedding of a patient is the model's last hidden state (after its final norm) at the last
token of the patient's prompt at the headline rung (sensitive codes removed). MLP probes
(scikit-learn), per target and train fraction: a stratified split, a grid search with 3-fold
cross-validation on weighted F1 (the paper's grid: hidden (100), (100, 100), (100, 100, 100);
alpha 1e-4 / 1e-3 / 1e-2; learning rate 1e-3 / 1e-2 / 1e-1; max_iter 200 / 300 / 400), the best
refitted, scored on the held-back part: balanced accuracy, AUROC (from predicted probabilities,
where the peer code used hard labels) with a bootstrap interval, AUPRC, F1, precision, recall.

Targets: each sensitive category among members (the pretraining patients, as the paper), and
membership (members vs held-out). AUROC near 0.5: the embedding does not reveal the target.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.core.stats import auc_bootstrap_ci

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel

PAPER_GRID = {"mlp__hidden_layer_sizes": [(100,), (100, 100), (100, 100, 100)], "mlp__alpha": [1e-4, 1e-3, 1e-2],
              "mlp__learning_rate_init": [1e-3, 1e-2, 1e-1], "mlp__max_iter": [200, 300, 400]}
SMALL_GRID = {"mlp__hidden_layer_sizes": [(100,)], "mlp__alpha": [1e-4, 1e-2], "mlp__learning_rate_init": [1e-3, 1e-2], "mlp__max_iter": [200]}


def last_token_states(lm: "HFLanguageModel", prompts: list[list[int]], *, batch_size: int = 64) -> np.ndarray:
    """(P, d) final hidden state at each prompt's last token (right-padded batches)."""
    import torch

    from rotelab.core.batching import map_sorted

    @torch.inference_mode()
    def run(batch: list[list[int]]) -> list[np.ndarray]:
        ids, mask = lm._right_pad(batch)
        h = lm.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, d)
        last = torch.tensor([len(x) - 1 for x in batch], device=h.device)
        return list(h[torch.arange(len(batch), device=h.device), last].float().cpu().numpy())

    return np.stack(map_sorted(run, prompts, batch_size=batch_size)) if prompts else np.zeros((0, 1))


def probe_target(X: np.ndarray, y: np.ndarray, *, fraction: float, grid: str, seed: int, jobs: int = 1) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Train a probe on ``fraction`` of (X, y), score the rest. Returns (metrics, test rows, test scores);
    metrics hold ``reason`` (and no scores) when a class is too small to split and cross-validate.
    ``jobs``: the grid search's processes (joblib ``n_jobs``; -1 all cores); every fit is seeded, so the result does not depend on it."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    y = y.astype(int)
    n_pos, n = int(y.sum()), len(y)
    base = {"fraction": fraction, "n": n, "n_positive": n_pos}
    rows = np.arange(n)
    if any(int(fraction * c) < 3 or c - int(np.ceil(fraction * c)) < 1 for c in (n - n_pos, n_pos)):
        return base | {"reason": f"a class has too few patients to train on {fraction:g} with 3-fold CV ({n_pos} positive of {n})"}, None, None
    tr, te = train_test_split(rows, train_size=fraction, random_state=seed, stratify=y)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(random_state=seed))])
    search = GridSearchCV(pipe, PAPER_GRID if grid == "paper" else SMALL_GRID, cv=3, scoring="f1_weighted", n_jobs=jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        search.fit(X[tr], y[tr])
    p = search.best_estimator_.predict_proba(X[te])[:, 1]
    hard = (p >= 0.5).astype(int)
    yt = y[te]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # precision of a probe that predicts no positive is 0 (zero_division)
        out = base | {
            "auroc": float(roc_auc_score(yt, p)), "auroc_ci": list(auc_bootstrap_ci(p, yt, seed=seed)), "auprc": float(average_precision_score(yt, p)),
            "balanced_accuracy": float(balanced_accuracy_score(yt, hard)), "f1": float(f1_score(yt, hard, zero_division=0)),
            "precision": float(precision_score(yt, hard, zero_division=0)), "recall": float(recall_score(yt, hard, zero_division=0)),
            "n_test": int(len(te)), "best": {k.removeprefix("mlp__"): v for k, v in search.best_params_.items()},
        }
    return out, te, p
