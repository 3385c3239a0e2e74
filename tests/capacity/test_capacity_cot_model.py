"""Fixed-precision rounding and training on the condition-separating families."""

import pytest
import torch

from rotelab.capacity.cot.data import prefix_conflicts, single_symbol
from rotelab.capacity.cot.model import TinyConfig, TrainConfig, encode, quantize, train_memorize

FAST = TrainConfig(steps=300, lr=1e-2)


def test_int8_rounds_to_127_levels_of_the_max():
    x = torch.tensor([1.0, 0.5, 0.3337, -1.0])
    q = quantize(x, "int8")
    assert torch.allclose(q * 127, torch.round(x * 127))


def test_fp8_is_coarser_than_bf16_and_keeps_gradients():
    x = torch.linspace(0.1, 1, 50, requires_grad=True)
    e_bf, e_fp8 = ((quantize(x, p) - x).abs().max() for p in ("bf16", "fp8"))
    assert 0 < e_bf < e_fp8 < 0.07
    quantize(x, "fp8").sum().backward()
    assert torch.equal(x.grad, torch.ones(50))  # straight-through


def test_encode_supervises_only_trace_and_label():
    data = single_symbol(3)
    tok, tgt = encode(data, cot=True)
    # gamma^2 + PAUSE + label(0): supervised from the last input symbol on
    assert tok[1].tolist()[:4] == [0, 0, data.vocab.pause, data.vocab.label(0)]
    assert tgt[1].tolist()[:3] == [-100, data.vocab.pause, data.vocab.label(0)]


@pytest.fixture(scope="session")
def single_runs():
    data = single_symbol(4)
    arch = TinyConfig(vocab=data.vocab.size, width=8, heads=2, depth=1, pos="none", max_len=10)
    return {cot: train_memorize(data, arch, cot=cot, seed=0, cfg=FAST) for cot in (False, True)}


def test_no_cot_nope_cannot_separate_single_symbol_lengths(single_runs):
    assert single_runs[False]["memorized"] <= 0.5  # the checker's bound, reached or not, never beaten


def test_cot_separates_short_single_symbol_inputs(single_runs):
    assert single_runs[True]["memorized"] == 1.0


def test_prefix_conflicts_defeat_cot_not_no_cot():
    data = prefix_conflicts(3, seed=1)
    arch = TinyConfig(vocab=data.vocab.size, width=8, heads=2, depth=1, pos="none", max_len=10)
    assert train_memorize(data, arch, cot=False, seed=0, cfg=FAST)["memorized"] == 1.0
    assert train_memorize(data, arch, cot=True, seed=0, cfg=FAST)["memorized"] <= 0.5


def test_patience_stops_a_stalled_run_and_says_why():
    data = single_symbol(6)  # no-CoT NoPE is stuck at <= 1/2 whatever the budget
    arch = TinyConfig(vocab=data.vocab.size, width=8, heads=2, depth=1, pos="none", max_len=8)
    r = train_memorize(data, arch, cot=False, seed=0, cfg=TrainConfig(steps=3000, lr=1e-2, patience=200))
    assert r["stop"] == "plateau" and r["steps"] < 3000 and r["memorized"] <= 0.5
    assert train_memorize(data, arch, cot=False, seed=0, cfg=TrainConfig(steps=100, lr=1e-2))["stop"] == "steps"
    thr = single_symbol(6, labels="threshold")
    r = train_memorize(thr, arch, cot=True, seed=0, cfg=TrainConfig(steps=1000, lr=1e-2, patience=200))
    assert r["stop"] == "memorized" and r["memorized"] == 1.0
