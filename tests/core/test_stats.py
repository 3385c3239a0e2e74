import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from rotelab.core import stats


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(1, 1, 300), rng.normal(0, 1, 500)])
    s[::7] = np.round(s[::7], 1)  # ties
    y = np.r_[np.ones(300), np.zeros(500)]
    return s, y


def test_roc_auc_matches_sklearn(sample):
    s, y = sample
    assert stats.roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_auc_one_class_is_nan_with_warning():
    with pytest.warns(UserWarning):
        assert np.isnan(stats.roc_auc([0.1, 0.2], [1, 1]))


def test_bootstrap_ci_brackets_auc_and_is_seeded(sample):
    s, y = sample
    lo, hi = stats.auc_bootstrap_ci(s, y, n_boot=300, seed=1)
    assert lo < stats.roc_auc(s, y) < hi
    assert (lo, hi) == stats.auc_bootstrap_ci(s, y, n_boot=300, seed=1)
    assert hi - lo < 0.15


def test_clopper_pearson_matches_scipy():
    for x, n in [(0, 20), (3, 20), (20, 20), (57, 300)]:
        ref = binomtest(x, n).proportion_ci(confidence_level=0.95, method="exact")
        lo, hi = stats.clopper_pearson(x, n)
        assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


def test_tpr_at_fpr_by_hand():
    # 100 non-members 0..99; at 1% FPR one may score above tau -> tau = 98 (2nd largest)
    neg = np.arange(100, dtype=float)
    pos = np.array([98.5, 99.5, 50.0, 120.0])
    s, y = np.r_[pos, neg], np.r_[np.ones(4), np.zeros(100)]
    tpr, hits, n, reason = stats.tpr_at_fpr(s, y, 0.01)
    assert (tpr, hits, n, reason) == (0.75, 3, 4, None)
    fpr_realised = (neg > 98).mean()
    assert fpr_realised <= 0.01


def test_tpr_refused_with_too_few_negatives(sample):
    s, y = sample  # 500 non-members: 1% fine, 0.1% needs 1000
    m = stats.summarize(s, y, n_boot=50)
    assert m["tpr_at_1pct_fpr"] is not None and len(m["tpr_at_1pct_fpr_ci"]) == 2
    assert m["tpr_at_0_1pct_fpr"] is None and m["tpr_at_0_1pct_fpr_ci"] is None
    assert m["tpr_at_0_1pct_fpr_reason"] == "500 non-members < 1000 needed for FPR 0.001"
    assert (m["n_members"], m["n_nonmembers"]) == (300, 500)


def test_rate_ci_is_clopper_pearson_and_says_why_when_empty():
    from rotelab.core.stats import rate_ci
    from rotelab.report.html import rate_cell

    r = rate_ci(3, 10)
    assert r["rate"] == 0.3 and r["hits"] == 3 and r["n"] == 10
    ci = binomtest(3, 10).proportion_ci(method="exact")
    assert r["ci"] == pytest.approx([ci.low, ci.high])
    empty = rate_ci(0, 0, reason="no windows")
    assert empty["rate"] is None and empty["ci"] is None and empty["rate_reason"] == "no windows"
    assert rate_cell(r) == "0.300 [0.067, 0.652] (3/10)" and rate_cell(empty) == "—"


def test_seed_interval_matches_scipy_t_interval():
    from scipy import stats

    from rotelab.core.stats import seed_interval

    x = [3.1, 2.7, 3.6, 3.0]
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    got = seed_interval(x)
    assert got["ci95_t"] == pytest.approx([lo, hi]) and got["n_seeds"] == 4
    assert seed_interval([1.0])["ci95_t"] is None


def test_bootstrap_ci_covers_the_statistic_and_handles_edge_cases():
    from rotelab.core.stats import bootstrap_ci

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.0, size=200)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and 0.15 < hi - lo < 0.4  # ~ 2 * 1.96 / sqrt(200) = 0.28
    lo_m, hi_m = bootstrap_ci(x, np.median)
    assert lo_m < np.median(x) < hi_m
    assert bootstrap_ci(np.append(x, np.nan)) == (lo, hi)  # non-finite values left out
    assert bootstrap_ci([1.0]) is None and bootstrap_ci([]) is None
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
