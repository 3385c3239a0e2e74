"""The dataset generators and the memorisation-condition checker."""

from rotelab.capacity.cot.data import (
    ReasoningSet, Vocab, check_conditions, composition, parity, pause_trace, prefix_conflicts, random_labels, single_symbol,
)


def test_single_symbol_family_breaks_no_cot_condition_only():
    ch = check_conditions(single_symbol(6))
    assert ch["no_cot"]["holds"] is False
    assert ch["no_cot"]["max_accuracy"] == 0.5  # one output for gamma^1..gamma^6, labels alternate
    assert ch["cot"]["holds"] is True
    assert ch["cot"]["single_symbol_pairs"] > 0


def test_prefix_conflicts_break_cot_condition_only():
    data = prefix_conflicts(5, seed=3)
    ch = check_conditions(data)
    assert ch["no_cot"]["holds"] is True and ch["no_cot"]["max_accuracy"] == 1.0
    assert ch["cot"]["holds"] is False
    assert ch["cot"]["max_accuracy"] == 0.5  # five disjoint pairs, one loses in each
    assert all(data.xs[j] == data.xs[i] + data.traces[i][:1] for i, j in ch["cot"]["violations"])


def test_random_labels_with_pause_trace_meet_both_conditions():
    ch = check_conditions(pause_trace(random_labels(40, length=5, seed=1), 2))
    assert ch["no_cot"]["holds"] and ch["cot"]["holds"]


def test_duplicate_input_with_two_labels_fails_both():
    v = Vocab(2, 2)
    data = ReasoningSet("dup", v, [(0, 1), (0, 1), (1, 1, 0)], [0, 1, 0], [(v.pause,)] * 3)
    ch = check_conditions(data)
    assert ch["no_cot"]["max_accuracy"] == 2 / 3
    assert ch["cot"]["holds"] is False and ch["cot"]["violations"] == [(0, 1)]


def test_parity_trace_is_running_parity():
    data = parity(10, length=5, seed=0)
    for x, t, y in zip(data.xs, data.traces, data.ys):
        assert t == tuple(sum(x[: k + 1]) % 2 for k in range(5)) and y == sum(x) % 2


def test_composition_sequences_put_trace_between_input_and_label():
    data = composition(6, length=4, seed=2)
    seq, start = data.sequences(cot=True)[0]
    assert seq == list(data.xs[0]) + list(data.traces[0]) + [data.vocab.label(data.ys[0])]
    assert start == 3
    assert data.sequences(cot=False)[0][0] == list(data.xs[0]) + [data.vocab.label(data.ys[0])]


def test_random_labels_refuses_more_strings_than_exist():
    import pytest

    with pytest.raises(ValueError, match="only 8 strings"):
        random_labels(9, length=3, alphabet=2)


def test_single_symbol_threshold_labels_break_no_cot_only_with_one_cut():
    data = single_symbol(8, labels="threshold")
    assert data.ys == [0, 0, 0, 0, 1, 1, 1, 1]
    ch = check_conditions(data)
    assert ch["no_cot"]["holds"] is False and ch["no_cot"]["max_accuracy"] == 0.5
    assert ch["cot"]["holds"] is True


def test_single_symbol_rejects_unknown_labels():
    import pytest

    with pytest.raises(ValueError, match="labels must be one of"):
        single_symbol(4, labels="mod3")
