"""The experiment scripts' set-ups (bench/entropy_*.py): splits, the forgetting task, the gate per micro-batch."""

import importlib.util
import random
from pathlib import Path

import pytest
import torch

from rotelab.entropy.gapt import GateConfig
from rotelab.entropy.mbe import patch_mbe

BENCH = Path(__file__).parents[2] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arith_operands_have_the_asked_digit_counts_and_labels_cover_only_the_result():
    ar = _load("entropy_arith")
    rng = random.Random(0)
    ns = [ar.number(rng, 1, 3) for _ in range(2000)]
    assert {len(str(n)) for n in ns} == {1, 2, 3} and 0 not in ns  # no leading zeros, no 0 operand
    assert {len(str(ar.number(rng, 4, 4))) for _ in range(200)} == {4}  # the OOD split: only 4-digit operands
    x, mask, labels = ar.batch([(12, 34), (7, 8)])
    text = lambda row: "".join(ar.VOCAB[int(t)] for t in row)  # noqa: E731
    assert text(x[0, mask[0].bool()]) == "<bos>12 x 34 = 408<eos>"
    assert text(labels[0][labels[0] != -100]) == "408<eos>" and text(labels[1][labels[1] != -100]) == "56<eos>"
    ids, start = ar.encode(120, 34, reverse=True)  # least-significant digit first: 4080 -> "0804"
    assert "".join(ar.VOCAB[t] for t in ids[start:]) == "0804<eos>"


def test_forget_teachers_are_opposite_shifts_of_the_students_start():
    fg = _load("entropy_forget")
    g = torch.Generator().manual_seed(0)
    theta0 = fg.mlp()
    delta = fg.shift(theta0, g)
    plus, minus = fg.shifted(theta0, delta, 1.0), fg.shifted(theta0, delta, -1.0)
    for (n, p0), pp, pm in zip(theta0.named_parameters(), plus.parameters(), minus.parameters()):
        assert torch.allclose((pp + pm) / 2, p0, atol=1e-6)
        ratio = float(delta[n].norm() / p0.detach().norm())
        assert 0.5 <= ratio <= 5.0
        if p0.ndim == 2:
            assert torch.linalg.matrix_rank(delta[n]) == 3


def test_forget_micro_batch_losses_match_per_micro_batch_mbe_and_the_gate_steps_per_micro_batch():
    fg = _load("entropy_forget")
    torch.manual_seed(0)
    s = fg.mlp()
    x, y = torch.randn(fg.ACCUM, fg.MICRO, 10), torch.randn(fg.ACCUM, fg.MICRO, 10)
    l1, mbe = fg.micro_losses(s, x, y)
    h = s[1](s[0](x[3]))
    assert mbe[3].item() == pytest.approx(patch_mbe(h[None], patch=fg.PATCH).item(), abs=1e-5)
    assert l1[3].item() == pytest.approx((s(x[3]) - y[3]).abs().mean().item(), abs=1e-6)
    g = torch.Generator().manual_seed(0)
    data = {"p1": (torch.randn(64, 10), torch.randn(64, 10)), "p2": (torch.randn(64, 10), torch.randn(64, 10))}
    # huge plateau thresholds: p_m micro-batches of memorising, then p_a of compressing, within one optimiser step
    info = fg.train(fg.mlp(), data, mode="mix", method="gapt", epochs=1, g=g, gate_cfg=GateConfig(p_m=4, p_a=4, tau_m=10.0, tau_a=10.0, tau_spike=1e9))
    assert info["switches"] == 8 and info["share_compress"] == pytest.approx(0.5)
    assert fg.train(fg.mlp(), data, mode="p1", method="mbe", epochs=1, g=g, gate_cfg=GateConfig())["share_compress"] == 1.0
