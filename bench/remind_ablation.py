"""REMIND ablation on the testbed (issue 21): which part of REMIND carries its signal.

For each model of ``bench/verify_testbed.py`` (every registry method at 1.0x and the retrain
null, per seed; the same resumable folders under ``--work``), one probe at K_max variants per
setting gives REMIND's features at every K <= K_max from nested subsets of the variants (as
:func:`rotelab.membership.remind.curve.variant_curve`), plus the pointwise baselines (loss,
Min-K%++, neighbourhood at the default K, ROUGE-L of the greedy continuation). Then, one factor at
a time from REMIND's default (every feature, standardised 3-way logistic regression C = 1, K = 8,
the same stratified folds for every row):

    features    loss only; landscape without loss; loss + mean dL per setting; loss + relative dL;
                loss + the dL distribution; loss + per-swap / context / slope features; all + Min-K%++
    classifier  logistic C = 0.1 / 10; logistic fitted on forgotten vs holdout only (2-way);
                gradient-boosted trees (3-way)
    K           2, 4, 16, 32 variants per setting

Each row: forgotten-vs-holdout AUC and TPR@1%FPR (out of fold), the paper's 3-way macro AUC,
and the AUC minus the best pointwise baseline's on the same model (every baseline through the
same classifier and folds, as the suite does), averaged over the unlearned models with a
Student-t interval; the retrain null beside it.

Writes bench/results/remind_ablation_<preset>.{json,md}; per-model features in
``<work>/<preset>-s<seed>/remind-ablation/<method>.parquet`` (resumes).

    nice -n 10 python bench/remind_ablation.py --preset tiny --seeds 0,1,2 --work runs/vb
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from verify_testbed import method_names, prepare  # noqa: E402  (the same models as the verify benchmark)

from rotelab.core.io import write_json  # noqa: E402
from rotelab.core.runs import read_parquet, write_parquet  # noqa: E402
from rotelab.core.stats import seed_interval  # noqa: E402
from rotelab.membership.remind.classify import STATES, assign_folds, cv_proba, state_metrics  # noqa: E402
from rotelab.membership.remind.landscape import landscape_features, setting_name  # noqa: E402
from rotelab.membership.remind.suite import RemindConfig  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KS = (2, 4, 8, 16, 32)
DEFAULT_K = RemindConfig().probe.k
BASELINES = ("loss", "minkpp", "neighbourhood", "rouge_l")


def remind_sets(tb: Path) -> dict:
    from rotelab.core.data import read_jsonl

    rd = lambda n: read_jsonl(tb / "splits" / f"{n}.jsonl")  # noqa: E731
    return {"retained": [s for s in rd("retain") if s.meta.get("kind") == "fact"], "forgotten": rd("forget"), "holdout": rd("holdout")}


def probe(model: Path, sets: dict, cfg: RemindConfig, dest: Path) -> dict[str, np.ndarray]:
    """Per sample: state, fold, the baselines' scores, and REMIND's features at each K (``k<K>:<feature>``)."""
    if dest.exists():
        return read_parquet(dest)
    from rotelab.core.api import as_model
    from rotelab.core.signals import compute_signals
    from rotelab.membership.attacks import minkpp_score
    from rotelab.membership.perturb import build_neighbours
    from rotelab.membership.remind.suite import probe_variants, rouge_continuation

    lm = as_model(model)
    samples = [s for st in STATES for s in sets[st]]
    y = np.array([i for i, st in enumerate(STATES) for _ in sets[st]])
    sig = compute_signals(lm, [s.text for s in samples], ids=[s.id for s in samples], batch_size=cfg.batch_size, progress=False)
    nb = build_neighbours(lm, max_rank=max(cfg.probe.ranks))
    probed = probe_variants(lm, sig, nb, replace(cfg.probe, k=max(KS)), batch_size=cfg.batch_size)
    cols: dict[str, np.ndarray] = {"y": y, "fold": assign_folds(y, cfg.folds, cfg.seed)}
    for k in KS:
        p = replace(cfg.probe, k=k)
        feats = [landscape_features(s, {st: v[:k] for st, v in var.items()}, {st: m[:k] for st, m in masks.items()}, p) for s, (var, masks) in zip(sig, probed)]
        cols |= {f"k{k}:{n}": np.array([f[n] for f in feats], dtype=float) for n in feats[0]}
    cols["b_loss"] = -cols[f"k{DEFAULT_K}:loss"]
    cols["b_minkpp"] = np.array([minkpp_score(s) for s in sig])
    cols["b_neighbourhood"] = cols[f"k{DEFAULT_K}:dl_mean_{setting_name(cfg.probe.ranks[0], cfg.probe.base_rate)}"]
    cols["b_rouge_l"] = rouge_continuation(lm, sig, n_new=cfg.continuation, batch_size=cfg.batch_size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(dest, cols)
    return cols


def feature_sets(names: list[str]) -> dict[str, list[str]]:
    """Named subsets of REMIND's feature names (one K's, without the ``k<K>:`` prefix)."""
    has = lambda *pre: [n for n in names if n.startswith(pre)]  # noqa: E731
    dist = ["dl_std", "dl_min", "dl_max", "dl_q10", "dl_q50", "dl_q90", "share_lower"]
    shape = ["dl_per_swap", "ctx_dl", "slope_rank", "curv_rank", "slope_rate"]
    return {
        "all (REMIND)": names,
        "loss only": ["loss"],
        "landscape without loss": [n for n in names if n != "loss" and not n.startswith("dl_rel")],
        "loss + mean dL per setting": ["loss", *has("dl_mean")],
        "loss + relative dL": ["loss", *has("dl_rel")],
        "loss + dL distribution": ["loss", *dist],
        "loss + per-swap/context/slopes": ["loss", *shape],
    }


def classifiers(C: float) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logreg = lambda c: (lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)))  # noqa: E731
    return {"logreg C=0.1": logreg(0.1), "logreg C=10": logreg(10.0), "logreg 2-way (forgotten vs holdout only)": ("2way", logreg(C)),
            "gradient-boosted trees": lambda: HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=8, random_state=0)}


def figures(X: np.ndarray, y: np.ndarray, fold: np.ndarray, C: float, make=None, seed: int = 0) -> dict:
    """Out-of-fold forgotten-vs-holdout AUC, TPR@1%FPR and 3-way macro AUC of one classifier."""
    two_way = isinstance(make, tuple)
    if two_way:
        fh = y != STATES.index("retained")
        P = cv_proba(X[fh], y[fh], fold[fh], C, make=make[1])
        return state_metrics(P, y[fh], seed=seed)  # no 3-way figure: retained never seen
    return state_metrics(cv_proba(X, y, fold, C, make=make), y, seed=seed)


def ablate(cols: dict[str, np.ndarray], C: float) -> dict[str, dict]:
    """Every ablation row and every baseline on one model."""
    y, fold = cols["y"].astype(int), cols["fold"].astype(int)
    names = [c.split(":", 1)[1] for c in cols if c.startswith(f"k{DEFAULT_K}:")]
    X = lambda k, ns: np.column_stack([cols[f"k{k}:{n}"] for n in ns]).astype(float)  # noqa: E731
    out = {f"baseline: {b}": figures(cols[f"b_{b}"].reshape(-1, 1).astype(float), y, fold, C) for b in BASELINES}
    for name, ns in feature_sets(names).items():
        out[f"features: {name}"] = figures(X(DEFAULT_K, ns), y, fold, C)
    out["features: all + Min-K%++"] = figures(np.column_stack([X(DEFAULT_K, names), cols["b_minkpp"]]), y, fold, C)
    for name, make in classifiers(C).items():
        out[f"classifier: {name}"] = figures(X(DEFAULT_K, names), y, fold, C, make=make)
    for k in KS:
        if k != DEFAULT_K:
            out[f"K = {k}"] = figures(X(k, names), y, fold, C)
    return out


def table(rows: list[dict]) -> str:
    """Mean over the unlearned models (t-interval) and the retrain null, per ablation row."""
    unl = [r for r in rows if r["method"] != "retrain"]
    null = [r for r in rows if r["method"] == "retrain"]
    methods = sorted({r["method"] for r in unl})
    head = ["row", "AUC F-vs-H (unlearned, mean [t 95%])", "minus best baseline [t 95%]", "TPR@1%FPR", "3-way macro AUC",
            *[f"{m} AUC" for m in methods], "retrain null AUC (per seed)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def best(r):
        return max(r["rows"][f"baseline: {b}"]["auc_forgotten_vs_holdout"] for b in BASELINES)

    def ci(v):
        s = seed_interval(v)
        return f"{s['mean']:.3f}" + (f" [{s['ci95_t'][0]:.3f}, {s['ci95_t'][1]:.3f}]" if s["ci95_t"] else "")

    for key in rows[0]["rows"]:
        get = lambda r, f="auc_forgotten_vs_holdout": r["rows"][key].get(f)  # noqa: E731
        tpr = [get(r, "tpr_at_1pct_fpr_forgotten_vs_holdout") for r in unl]
        three = [get(r, "auc_3way_macro") for r in unl]
        lines.append("| " + " | ".join([
            key, ci([get(r) for r in unl]), ci([get(r) - best(r) for r in unl]),
            f"{np.mean([t for t in tpr if t is not None]):.3f}" if any(t is not None for t in tpr) else "-",
            f"{np.mean([t for t in three if t is not None]):.3f}" if any(t is not None for t in three) else "-",
            *[f"{np.mean([get(r) for r in unl if r['method'] == m]):.3f}" for m in methods],
            " / ".join(f"{get(r):.2f}" for r in sorted(null, key=lambda r: r["seed"])),
        ]) + " |")
    n = len(unl)
    notes = ["", f"Forgotten-vs-holdout AUC out of fold, mean over {n} unlearned models ({', '.join(methods)} at 1.0x x seeds "
             f"{sorted({r['seed'] for r in unl})}) with a Student-t 95% interval; 'minus best baseline': per model, the row's AUC minus the "
             f"highest of the {len(BASELINES)} pointwise baselines' ({', '.join(BASELINES)}; each through the same classifier and folds). "
             f"Defaults: every feature, logistic C=1 3-way, K={DEFAULT_K}. Each model's AUC interval is in the JSON."]
    return "\n".join(lines + notes) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=None)
    ap.add_argument("--work", type=Path, default=Path("runs/verify_testbed"))
    a = ap.parse_args()
    cfg = RemindConfig()
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        for m in method_names(a.methods):
            t = time.time()
            tb, target, _ = prepare(a.preset, seed, m, a.work)
            cols = probe(target, remind_sets(tb), cfg, a.work / f"{a.preset}-s{seed}" / "remind-ablation" / f"{m}.parquet")
            rows.append({"preset": a.preset, "seed": seed, "method": m, "model": str(target), "rows": ablate(cols, cfg.C), "n": {st: int((cols["y"] == i).sum()) for i, st in enumerate(STATES)}})
            print(f"{a.preset} s{seed} {m}: {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"remind_ablation_{a.preset}.json", {"rows": rows, "ks": KS, "config": asdict(cfg)})
    md = table(rows)
    (RESULTS / f"remind_ablation_{a.preset}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
