"""Quantization rounds per output channel; relearning moves a copy only; bad input exits 2 before a run folder; SimNPO's formula."""

import pytest
import torch
from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.testbed.methods import METHODS, Batch
from rotelab.testbed.unlearn import UnlearnConfig
from rotelab.verify.attacks import RelearnConfig, quantize_weight, quantized_copy, relearned_copy


def test_quantize_weight_rounds_each_output_channel_on_its_own_grid():
    w = torch.tensor([[1.0, 0.3, -0.6], [10.0, 4.0, -2.6]])
    q = quantize_weight(w, 3)  # q_max 3: steps max|w_c| / 3 per row
    assert torch.allclose(q[0], torch.tensor([1.0, 1 / 3, -2 / 3]), atol=1e-6)
    assert torch.allclose(q[1], torch.tensor([10.0, 10 / 3, -10 / 3]), atol=1e-5)
    assert torch.equal(quantize_weight(w.T, 3, channel_dim=1), q.T)  # Conv1D layout (in, out)
    assert (quantize_weight(w, 8) - w).abs().max() <= 10 / 127 / 2 + 1e-6


def test_quantized_and_relearned_copies_leave_the_model_alone(gpt2_lm):
    model = gpt2_lm.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q, n = quantized_copy(model, 4)
    assert n == 4 * 2  # c_attn, c_proj, c_fc, mlp c_proj per block; the tied head kept
    assert torch.equal(q.get_output_embeddings().weight, model.get_output_embeddings().weight)
    assert not torch.equal(q.transformer.h[0].attn.c_attn.weight, model.transformer.h[0].attn.c_attn.weight)
    ids = gpt2_lm.tokenize(["the quick fox jumps over the lazy dog number 1"] * 4)
    r, losses = relearned_copy(model, ids, RelearnConfig(steps=5, lr=1e-2, batch_size=2))
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_simnpo_matches_its_formula():
    cfg = UnlearnConfig(method="simnpo", beta=2.0, retain_weight=0.5)
    f = Batch(torch.tensor([-10.0, -30.0]), torch.tensor([5.0, 10.0]))
    r = Batch(torch.tensor([-4.0]), torch.tensor([2.0]))
    want = -(2 / 2.0) * torch.nn.functional.logsigmoid(-2.0 * torch.tensor([-2.0, -3.0])).mean() + 0.5 * 2.0
    assert float(METHODS["simnpo"].obj(cfg).loss(f, r)) == pytest.approx(float(want))


def test_verify_refuses_bad_input_before_a_run_folder(tmp_path, arch_dirs):
    from rotelab.errors import RotelabError
    from rotelab.verify.api import VerifyConfig, verify

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": "x", "text": "one text"}\n{"id": "y", "text": "two"}\n')
    b.write_text('{"id": "z", "text": "one text"}\n{"id": "w", "text": "three"}\n')
    out = tmp_path / "run"
    with pytest.raises(RotelabError, match="--forget and --retain: 1 texts appear in both"):
        verify(arch_dirs["gpt2"], forget=a, retain=b, holdout=b, out=out, config=VerifyConfig(remind=False))
    with pytest.raises(RotelabError, match=r"--delta must be in \[0, 0.5\); got 0.7"):
        verify(arch_dirs["gpt2"], forget=a, retain=b, holdout=b, out=out, config=VerifyConfig(delta=0.7))
    assert not out.exists()


def test_verify_command_is_registered_with_its_options():
    r = CliRunner().invoke(app, ["verify", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and all(o in r.stdout for o in ("--forget", "--retrained", "--relearn-steps", "--quantize", "--delta"))


def test_too_few_bootstraps_for_holm_are_refused():
    """With 200 resamples and 10 attacks the smallest Holm-adjusted p is 10/201 > 0.025: nothing
    could ever detect, so a verification would always read "removed"."""
    from rotelab.errors import RotelabError
    from rotelab.verify.api import VerifyConfig

    with pytest.raises(RotelabError, match=r"--n-boot 200 is too few for 10 Holm-corrected attacks.*at least 399"):
        VerifyConfig(n_boot=200).check()
    VerifyConfig(n_boot=399).check()
    VerifyConfig(attacks="loss", remind=False, quantize_bits=(8,), n_boot=199).check()
