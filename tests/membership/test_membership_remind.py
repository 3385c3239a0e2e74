"""REMIND: features per sample, out-of-fold classification, baselines on the same folds."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.core.data import Sample
from rotelab.core.models import load_model
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.classify import STATES, _pipeline, assign_folds, cv_proba
from rotelab.membership.remind.suite import RemindConfig, run_remind

MICRO = RemindConfig(probe=ProbeConfig(ranks=(1, 4), rates=(0.3,), k=2), folds=3)


def _sets(splits, n=15):
    s = lambda rows: [Sample(r["id"], r["text"], r) for r in rows][:n]  # noqa: E731
    return {"retained": s([r for r in splits["retain"] if r["kind"] == "fact"]), "forgotten": s(splits["forget"]), "holdout": s(splits["holdout"])}


def test_cv_scores_each_sample_with_a_model_that_never_saw_it():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    X = rng.normal(size=(30, 3)) + y[:, None]
    fold = assign_folds(y, 5, 0)
    assert all(np.bincount(y[fold == f]).tolist() == [2, 2, 2] for f in range(5))
    P = cv_proba(X, y, fold, 1.0)
    f0 = fold == 0
    ref = _pipeline(1.0).fit(X[~f0], y[~f0]).predict_proba(X[f0])
    assert np.allclose(P[f0], ref)
    assert np.allclose(P.sum(1), 1)


def _check_3way(block: dict, f: dict) -> None:
    """The 3-way figures of ``metrics.json`` against scikit-learn on the stored out-of-fold probabilities."""
    from sklearn.metrics import confusion_matrix, roc_auc_score

    y = np.array([STATES.index(st) for st in f["state"]])
    P = np.column_stack([f[f"p_{st}"] for st in STATES])
    per_class = {st: roc_auc_score(y == i, P[:, i]) for i, st in enumerate(STATES)}
    assert block["auc_per_class"] == pytest.approx(per_class)
    assert block["auc_3way_macro"] == pytest.approx(np.mean(list(per_class.values())))
    cm = confusion_matrix(y, P.argmax(1), labels=[0, 1, 2])
    assert [[block["confusion_matrix"][t][p] for p in STATES] for t in STATES] == cm.tolist()
    assert [sum(block["confusion_matrix"][t].values()) for t in STATES] == [block["n"][t] for t in STATES]


def test_remind_on_the_trained_model_finds_the_forget_set(tiny_testbed, tiny_splits, tmp_path):
    """Before unlearning, 'forgotten' facts are trained: every method separates them from holdout."""
    sets = _sets(tiny_splits)
    para = {"forgotten": [Sample(r["id"], r["text"], r) for r in tiny_splits["paraphrases"] if r["split"] == "forget"][:10],
            "holdout": [Sample(r["id"], r["text"], r) for r in tiny_splits["paraphrases"] if r["split"] == "holdout"][:10]}
    run = RunFolder(tmp_path / "r", command="remind run", options={}, seed=0)
    m = run_remind(load_model(tiny_testbed), sets, run, config=MICRO, paraphrases=para, progress=False)
    assert m["remind"]["auc_forgotten_vs_holdout"] > 0.7
    assert set(m["baselines"]) == {"loss", "minkpp", "neighbourhood", "rouge_l"}
    assert m["baselines"]["loss"]["auc_forgotten_vs_holdout"] > 0.7
    assert m["remind"]["tpr_at_1pct_fpr_forgotten_vs_holdout"] is None and "100 needed" in m["remind"]["tpr_at_1pct_fpr_forgotten_vs_holdout_reason"]
    assert m["paraphrases"]["remind"]["n"] == {"retained": 0, "forgotten": 10, "holdout": 10}
    f = read_parquet(run.file("features.parquet"))
    assert len(f["id"]) == 45 and set(f["state"]) == set(STATES)
    assert np.allclose(f["p_retained"] + f["p_forgotten"] + f["p_holdout"], 1)
    _check_3way(m["remind"], f)
    assert m["remind"]["auc_per_class"]["holdout"] > 0.9  # the one never-trained state stands apart
    assert {"loss", "dl_mean_j1_p0.1", "dl_mean_j4_p0.1", "dl_mean_j1_p0.3", "slope_rank", "ctx_dl"} <= set(f)
    for name in ("remind_landscape", "remind_roc"):
        assert run.file(f"figures/{name}.png").exists()


def test_3way_figures_of_a_hand_computed_case():
    """Per-state AUC = P(score of the state > score of the rest), ties 1/2; macro = their mean."""
    from rotelab.membership.remind.classify import class_metrics

    y = np.array([0, 0, 1, 1, 2, 2])
    P = np.array([[.6, .2, .2], [.3, .4, .3], [.2, .5, .3], [.4, .4, .2], [.1, .3, .6], [.2, .2, .6]])
    m = class_metrics(P, y)
    # retained: positives .6, .3 vs negatives .2, .4, .1, .2 -> (4 + 3) / 8; forgotten: .5, .4 vs .2, .4, .3, .2 -> (4 + 3.5) / 8;
    # holdout: .6, .6 vs .2, .3, .3, .2 -> 8 / 8
    assert m["auc_per_class"] == pytest.approx({"retained": 7 / 8, "forgotten": 7.5 / 8, "holdout": 1.0})
    assert m["auc_3way_macro"] == pytest.approx((7 / 8 + 7.5 / 8 + 1) / 3)
    # argmax (first on ties): [0, 1, 1, 0, 2, 2]
    assert m["confusion_matrix"] == {"retained": {"retained": 1, "forgotten": 1, "holdout": 0},
                                     "forgotten": {"retained": 1, "forgotten": 1, "holdout": 0},
                                     "holdout": {"retained": 0, "forgotten": 0, "holdout": 2}}
    assert class_metrics(P[:4], y[:4]) == {"auc_3way_macro": None, "auc_3way_macro_reason": "needs all three states"}


@pytest.fixture(scope="module")
def unlearned(tiny_testbed, tmp_path_factory):
    """GradDiff on the tiny testbed until the forget loss is 1.5x the stop-calibration loss: really unlearned."""
    from rotelab.testbed import api

    out = tmp_path_factory.mktemp("unlearned") / "u"
    res = api.unlearn(tiny_testbed, method="graddiff", lr=1e-3, max_steps=60, out=out, progress=False)
    assert res["checkpoints"]["1.5x"]["reached"]
    return out / "checkpoints" / "1.5x"


def test_remind_3way_on_a_model_that_really_unlearned(unlearned, tiny_splits, tmp_path):
    """After unlearning the retained facts are the only trained state left: they stand apart from
    forgotten and holdout facts (which, at this strength on the tiny testbed, look alike: the
    forgotten-vs-holdout figure is the benchmark's question, not this test's)."""
    run = RunFolder(tmp_path / "r", command="remind run", options={}, seed=0)
    m = run_remind(load_model(unlearned), _sets(tiny_splits), run, config=MICRO, paraphrases=None, progress=False)
    r = m["remind"]
    assert r["auc_per_class"]["retained"] > 0.85 and r["auc_3way_macro"] > 0.65
    assert r["confusion_matrix"]["retained"]["retained"] > r["n"]["retained"] / 2
    assert r["confusion_matrix"]["forgotten"]["retained"] <= 3  # forgotten facts no longer look retained
    _check_3way(r, read_parquet(run.file("features.parquet")))


def test_k_curve_at_its_largest_k_is_remind_at_that_k(unlearned, tiny_splits, tmp_path):
    """The curve's points are nested subsets of one probe; its last point is REMIND run with that K."""
    from dataclasses import replace

    from rotelab.membership.remind.curve import variant_curve

    lm, sets = load_model(unlearned), _sets(tiny_splits)
    cfg = replace(MICRO, probe=replace(MICRO.probe, k=4))
    curve = variant_curve(lm, sets, (1, 4), config=cfg)
    m = run_remind(lm, sets, RunFolder(tmp_path / "r", command="remind run", options={}, seed=0), config=cfg, paraphrases=None, progress=False)
    assert [c["k"] for c in curve] == [1, 4] and [c["forward_passes_per_sample"] for c in curve] == [4, 13]  # 1 + 3 settings x K
    for key in ("auc_forgotten_vs_holdout", "auc_3way_macro", "auc_per_class", "confusion_matrix"):
        assert curve[1]["remind"][key] == m["remind"][key], key
        assert curve[1]["neighbourhood"][key] == m["baselines"]["neighbourhood"][key], key
    assert curve[0]["remind"]["auc_forgotten_vs_holdout"] != curve[1]["remind"]["auc_forgotten_vs_holdout"]
