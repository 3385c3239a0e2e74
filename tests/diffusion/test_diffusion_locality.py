import math

import pytest
import torch

from rotelab.diffusion.locality import iou, pairwise_iou, pairwise_l2


def test_iou_hand_values_and_empty_sets_are_undefined():
    assert iou({1, 2, 3}, {2, 3, 4}) == 0.5
    assert iou({1}, set()) == 0.0
    assert math.isnan(iou(set(), set()))


def test_pairwise_iou_reports_layers_where_nothing_was_selected():
    sets = [{"a": {1, 2}, "b": set()}, {"a": {2}, "b": set()}, {"a": {2, 3}, "b": set()}]
    r = pairwise_iou(sets)
    assert r["a"]["mean"] == (0.5 + 1 / 3 + 0.5) / 3
    assert r["b"]["mean"] is None and r["b"]["n_both_empty"] == 3 and "mean_reason" in r["b"]


def test_pairwise_l2_matches_hand_distance():
    ys = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]], [[0.0, 1.0]]])
    assert sorted(pairwise_l2(ys).tolist()) == pytest.approx([1.0, math.sqrt(18), 5.0])


def test_pairwise_iou_pooled_over_layers_matches_hand_value():
    # pooled units: A = {(a,1),(a,2),(b,7)}, B = {(a,2),(b,7),(b,8)} -> |A∩B| = 2, |A∪B| = 4
    r = pairwise_iou([{"a": {1, 2}, "b": {7}}, {"a": {2}, "b": {7, 8}}])
    assert r["all"]["mean"] == 0.5 and r["a"]["mean"] == 0.5 and r["b"]["mean"] == 0.5
