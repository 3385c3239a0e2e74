"""REMIND: is unlearned data really gone? Classify retained / forgotten / holdout from the input
loss landscape (features in :mod:`rotelab.membership.landscape`), and compare with pointwise
baselines fed to the same classifier and the same folds.

Classifier: standardised multinomial logistic regression, stratified k-fold cross-validation;
every sample is scored by the fold model that never saw it. Headline: forgotten vs holdout
(score = P(forgotten) / (P(forgotten) + P(holdout))); the 3-way macro one-vs-rest AUC is secondary
(retained samples are easy, which inflates it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rotelab.core.access import Access
from rotelab.core.runs import RunFolder
from rotelab.core.signals import TokenSignals, compute_signals
from rotelab.core.stats import summarize
from rotelab.membership.attacks import minkpp_score
from rotelab.membership.landscape import ProbeConfig, landscape_features
from rotelab.membership.perturb import Neighbours, build_neighbours, logp_of_id_lists, make_variants

if TYPE_CHECKING:
    from pathlib import Path

    from rotelab.core.cache import SignalCache
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel

STATES = ("retained", "forgotten", "holdout")
BASELINES = ("loss", "minkpp", "neighbourhood", "rouge_l")


@dataclass(frozen=True)
class RemindConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    folds: int = 5
    C: float = 1.0  # inverse L2 strength of the logistic regression
    batch_size: int = 64
    continuation: int = 16  # ROUGE-L baseline: greedy tokens after the first half
    seed: int = 0


def probe_samples(lm: "LanguageModel", sig: Sequence[TokenSignals], nb: Neighbours, cfg: ProbeConfig, *, batch_size: int = 64, progress: bool = False) -> list[dict[str, float]]:
    """Landscape features of every sample; all variants of all samples scored in shared batches."""
    rng = np.random.default_rng(cfg.seed)
    settings = cfg.settings()
    seqs: list[list[int]] = []
    masks: list[dict] = []
    for s in sig:
        m = {}
        for j, p in settings:
            v, m[(j, p)] = make_variants(s.token_ids, nb, k=cfg.k, p=p, j=j, rng=rng)
            seqs += v
        masks.append(m)
    out_lp = logp_of_id_lists(lm, seqs, batch_size=batch_size, progress=progress, label="REMIND variants")
    feats, at = [], 0
    for s, m in zip(sig, masks):
        var = {}
        for st in settings:
            var[st] = out_lp[at : at + cfg.k]
            at += cfg.k
        feats.append(landscape_features(s, var, m, cfg))
    return feats


def rouge_continuation(lm: "LanguageModel", sig: Sequence[TokenSignals], *, n_new: int, batch_size: int = 64) -> np.ndarray:
    """ROUGE-L between the greedy continuation of each text's first half and its true next tokens."""
    from rotelab.core.similarity import rouge_l

    prompts, truth = [], []
    for s in sig:
        ids = s.token_ids.tolist()
        h = max(1, len(ids) // 2)
        prompts.append(ids[:h])
        truth.append(ids[h : h + n_new])
    gen = lm.greedy(prompts, n_new, batch_size=batch_size)
    return np.array([rouge_l(lm.detokenize(t), lm.detokenize(g[: len(t)])) if t else 0.0 for t, g in zip(truth, gen)])


def _pipeline(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def assign_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    n = int(min(folds, np.bincount(y).min()))
    fold = np.empty(len(y), dtype=int)
    for f, (_, test) in enumerate(StratifiedKFold(n_splits=n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)):
        fold[test] = f
    return fold


def cv_proba(X: np.ndarray, y: np.ndarray, fold: np.ndarray, C: float) -> np.ndarray:
    """(N, 3) out-of-fold class probabilities: no sample is in both fit and score."""
    P = np.zeros((len(y), len(STATES)))
    for f in np.unique(fold):
        tr, te = fold != f, fold == f
        clf = _pipeline(C).fit(X[tr], y[tr])
        P[np.ix_(te, clf.classes_)] = clf.predict_proba(X[te])
    return P


def state_metrics(P: np.ndarray, y: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Forgotten-vs-holdout AUC and TPR@1%FPR with intervals, and the 3-way macro AUC."""
    from sklearn.metrics import roc_auc_score

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
    if len(np.unique(y)) == len(STATES):
        out["auc_3way_macro"] = float(roc_auc_score(y, P / P.sum(1, keepdims=True), multi_class="ovr", average="macro", labels=list(range(len(STATES)))))
    else:
        out.update(auc_3way_macro=None, auc_3way_macro_reason="needs all three states")
    return out


def _features(lm, samples, nb, cfg: RemindConfig, cache, progress) -> dict[str, np.ndarray]:
    """Landscape features plus every baseline's score, as columns."""
    sig = compute_signals(lm, [s.text for s in samples], ids=[s.id for s in samples], batch_size=cfg.batch_size, cache=cache, progress=progress)
    feats = probe_samples(lm, sig, nb, cfg.probe, batch_size=cfg.batch_size, progress=progress)
    cols = {k: np.array([f[k] for f in feats]) for k in feats[0]}
    base = f"dl_mean_j{cfg.probe.ranks[0]}_p{cfg.probe.base_rate:g}"
    cols["b_loss"] = -cols["loss"]
    cols["b_minkpp"] = np.array([minkpp_score(s) for s in sig])
    cols["b_neighbourhood"] = cols[base]  # mean NLL(neighbours) - NLL(x): Mattern et al. 2023
    if Access.GENERATION in lm.access:
        cols["b_rouge_l"] = rouge_continuation(lm, sig, n_new=cfg.continuation, batch_size=cfg.batch_size)
    return cols


def landscape_columns(cols: dict) -> list[str]:
    return [k for k in cols if not k.startswith("b_") and k not in ("id", "state", "fold", "set") and not k.startswith("p_")]


def run_remind(
    lm: "LanguageModel",
    sets: dict[str, list["Sample"]],
    run: RunFolder,
    *,
    config: RemindConfig = RemindConfig(),
    paraphrases: dict[str, list["Sample"]] | None = None,
    embedding_from: "Path | None" = None,
    cache: "SignalCache | None" = None,
    progress: bool = True,
) -> dict[str, Any]:
    """REMIND on retained / forgotten / holdout samples; writes features.parquet, metrics.json, figures."""
    from rotelab.core.runs import read_parquet
    from rotelab.membership.remind_figures import plot_landscape, plot_state_roc

    samples = [s for st in STATES for s in sets[st]]
    y = np.array([i for i, st in enumerate(STATES) for _ in sets[st]])
    nb = build_neighbours(lm, max_rank=max(config.probe.ranks), embedding_from=embedding_from)

    def do_features():
        cols = _features(lm, samples, nb, config, cache, progress)
        cols.update(id=[s.id for s in samples], state=[STATES[i] for i in y], fold=assign_folds(y, config.folds, config.seed))
        run.write_parquet("features_raw.parquet", cols)

    run.step("features", do_features)
    cols = read_parquet(run.file("features_raw.parquet"))
    fold = cols["fold"].astype(int)
    names = landscape_columns(cols)
    X = np.column_stack([cols[k] for k in names]).astype(float)
    P = cv_proba(X, y, fold, config.C)
    metrics: dict[str, Any] = {"remind": state_metrics(P, y, seed=config.seed) | {"features": names}, "baselines": {}}
    probs = {}
    for b in BASELINES:
        if f"b_{b}" not in cols:
            metrics["baselines"][b] = {"auc_forgotten_vs_holdout": None, "reason": f"the {lm.backend} backend offers no generation"}
            continue
        Pb = cv_proba(cols[f"b_{b}"].reshape(-1, 1).astype(float), y, fold, config.C)
        probs[b] = Pb
        metrics["baselines"][b] = state_metrics(Pb, y, seed=config.seed)
    out_cols = {k: v for k, v in cols.items()} | {f"p_{st}": P[:, i] for i, st in enumerate(STATES)}
    run.write_parquet("features.parquet", out_cols)
    if paraphrases:
        metrics["paraphrases"] = _paraphrase_row(lm, paraphrases, nb, X, y, names, config, cache, progress, run)
    metrics["config"] = asdict(config)
    run.write_json("metrics.json", metrics)
    plot_landscape(run, cols, config.probe)
    plot_state_roc(run, y, P, probs, metrics)
    return metrics


def _paraphrase_row(lm, paraphrases, nb, X, y, names, config: RemindConfig, cache, progress, run: RunFolder) -> dict[str, Any]:
    """Paraphrased questions, scored by a classifier fitted on every original sample (none of them
    is a paraphrase), reported with the same figures."""
    from rotelab.core.runs import read_parquet

    states = [st for st in STATES if paraphrases.get(st)]
    ps = [s for st in states for s in paraphrases[st]]
    yp = np.array([STATES.index(st) for st in states for _ in paraphrases[st]])

    def do():
        cols = _features(lm, ps, nb, config, cache, progress)
        run.write_parquet("paraphrase_features.parquet", cols | {"id": [s.id for s in ps], "state": [STATES[i] for i in yp]})

    run.step("paraphrase features", do)
    cols = read_parquet(run.file("paraphrase_features.parquet"))
    clf = _pipeline(config.C).fit(X, y)
    P = np.zeros((len(yp), len(STATES)))
    P[:, clf.classes_] = clf.predict_proba(np.column_stack([cols[k] for k in names]).astype(float))
    row = {"remind": state_metrics(P, yp, seed=config.seed)}
    for b in ("loss", "minkpp"):
        # Fitted on the originals' score too: the same question for every method.
        xb = np.asarray(read_parquet(run.file("features_raw.parquet"))[f"b_{b}"], dtype=float).reshape(-1, 1)
        cb = _pipeline(config.C).fit(xb, y)
        Pb = np.zeros_like(P)
        Pb[:, cb.classes_] = cb.predict_proba(cols[f"b_{b}"].reshape(-1, 1).astype(float))
        row[b] = state_metrics(Pb, yp, seed=config.seed)
    return row
