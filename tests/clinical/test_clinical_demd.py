"""d_EMD against hand-computed values, POT against scipy's assignment, and the small-cell rules."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.clinical.demd import Trajectories, d_emd, pseudo_times
from rotelab.clinical.privacy import auc_allowed, count, rate

VOCAB = ["A", "B", "TIME//2"]


def test_demd_hand_computed_with_and_without_time_weighting():
    # a = A TIME//2 B, b = A B, orthonormal embeddings: cosine distance 0 on equal tokens, else 1.
    # n = 3 (b padded with cost 1). Unweighted: A-A 0, B-B 0, TIME-pad 1 -> 1/3.
    # Pseudo-times a: 0, 0.9, 0.9; b: 0, 0; weights (|dtau| + 1), padding 2:
    #   C = [[0, 1, 2], [1.9, 1.9, 2], [1.9, 0, 2]] -> A-A 0 + B-B 0 * 1.9 + TIME-pad 2 = 2 -> 2/3.
    traj = Trajectories(np.eye(3), VOCAB, time_weighting=False)
    assert traj.distance([0, 2, 1], [0, 1]) == pytest.approx(1 / 3)
    traj_t = Trajectories(np.eye(3), VOCAB, time_weighting=True)
    assert traj_t.distance([0, 2, 1], [0, 1]) == pytest.approx(2 / 3)
    assert pseudo_times(["A", "TIME//2", "B"]).tolist() == pytest.approx([0, 0.9, 0.9])
    assert traj_t.distance([0, 2, 1], [0, 2, 1]) == 0.0  # identical trajectories
    # a cheaper match that is not the diagonal: a = A B, b = B A -> 0 (a permutation is free)
    assert traj.distance([0, 1], [1, 0]) == 0.0


def test_demd_scaled_embeddings_and_partial_similarity():
    # cos(A, B) = 0.6 -> cost 0.4; one pair: d = 0.4 / 1
    E = np.array([[1.0, 0.0], [0.6, 0.8]]) * 5
    assert Trajectories(E, ["A", "B"], time_weighting=False).distance([0], [1]) == pytest.approx(0.4)


@pytest.mark.parametrize("time_weighting", [True, False])
def test_batched_distances_equal_one_pair_at_a_time(time_weighting):
    """``distances`` builds the cost matrices of all samples of one length at once: the same
    values as ``distance`` per sample, for samples shorter, longer, equal and empty."""
    rng = np.random.default_rng(5)
    vocab = ["A", "B", "TIME//2", "TIME//0", "C", "TIME//60+"]
    traj = Trajectories(rng.normal(size=(6, 4)), vocab, time_weighting=time_weighting)
    a = [0, 2, 1, 4, 3]
    samples = [rng.integers(0, 6, size=k).tolist() for k in (5, 5, 2, 8, 0, 5, 1)]
    assert traj.distances(a, samples).tolist() == pytest.approx([traj.distance(a, b) for b in samples], abs=1e-12)
    assert traj.distances([], [[], [1]]).tolist() == pytest.approx([0.0, traj.distance([], [1])])
    assert traj.distances(a, []).shape == (0,)


@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (7, 2), (1, 5)])
def test_assignment_equals_pot(shape):
    rng = np.random.default_rng(sum(shape))
    C = rng.uniform(0, 2, size=shape)
    ta, tb = np.cumsum(rng.uniform(0, 1, shape[0])), np.cumsum(rng.uniform(0, 1, shape[1]))
    assert d_emd(C, solver="assignment") == pytest.approx(d_emd(C, solver="pot"), abs=1e-9)
    assert d_emd(C, ta, tb, solver="assignment") == pytest.approx(d_emd(C, ta, tb, solver="pot"), abs=1e-9)


def test_small_cell_suppression():
    assert count(19, 20) == "<20" and count(0, 20) == 0 and count(20, 20) == 20
    r = rate(3, 50, 20)  # 3 hits: a small cell, suppressed with its count
    assert r["rate"] is None and r["hits"] == "<20" and r["n"] == 50
    r = rate(45, 50, 20)  # its complement (5) is a small cell: neither the rate nor the hits give it away
    assert r["rate"] is None and r["hits"] == ">30" and r["n"] == 50
    assert rate(25, 50, 20)["rate"] == 0.5
    assert auc_allowed(19, 100, 20) and auc_allowed(20, 20, 20) is None


def test_average_precision_equals_scikit_learn():
    from sklearn.metrics import average_precision_score

    from rotelab.clinical.sensitive import average_precision

    rng = np.random.default_rng(3)
    for _ in range(5):
        y = rng.integers(0, 2, 40)
        s = np.round(rng.uniform(0, 1, 40), 1)  # ties
        assert average_precision(s, y) == pytest.approx(average_precision_score(y, s))
