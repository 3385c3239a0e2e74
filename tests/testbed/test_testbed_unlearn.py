import json

import pytest
from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.core.runs import RunFolder
from rotelab.testbed.unlearn import UnlearnConfig, npo_loss, unlearn

import torch


def test_npo_loss_matches_its_formula_and_tends_to_ga():
    logp, ref = torch.tensor([-10.0, -30.0]), torch.tensor([-12.0, -25.0])
    b = 0.1
    want = (2 / b) * torch.log1p(torch.exp(b * (logp - ref))).mean()
    assert npo_loss(logp, ref, b) == pytest.approx(float(want), rel=1e-6)
    # beta -> 0: gradient of NPO -> gradient of GA (mean log-lik), as Zhang et al. state
    x = logp.clone().requires_grad_(True)
    npo_loss(x, ref, 1e-4).backward()
    assert torch.allclose(x.grad, torch.full_like(x, 1 / len(x)), atol=1e-3)


@pytest.fixture(scope="module")
def ga_run(tiny_testbed, tmp_path_factory):
    out = tmp_path_factory.mktemp("ga")
    run = RunFolder(out, command="testbed unlearn", options={}, seed=0)
    return out, unlearn(tiny_testbed, UnlearnConfig(method="ga", max_steps=400), run, progress=False)


def test_gradient_ascent_checkpoints_at_outcome_strengths(ga_run):
    out, res = ga_run
    for name in ("1.0x", "1.5x"):
        ck = res["checkpoints"][name]
        assert ck["reached"] and ck["forget"] >= res["targets"][name]
        assert (out / "checkpoints" / name / "model.safetensors").exists()
    assert res["checkpoints"]["1.0x"]["step"] < res["checkpoints"]["1.5x"]["step"]
    assert res["base_losses"]["forget"] < res["base_losses"]["holdout"]  # it was memorized first
    assert (out / "model" / "config.json").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["testbed"] and m["splits"]["forget"].endswith("forget.jsonl")


def test_npo_runs_and_records_the_step_cap_when_targets_are_not_reached(tiny_testbed, tmp_path):
    run = RunFolder(tmp_path, command="testbed unlearn", options={}, seed=0)
    res = unlearn(tiny_testbed, UnlearnConfig(method="npo", max_steps=3), run, progress=False)
    assert "cap" in res["checkpoints"] and res["checkpoints"]["cap"]["reached"] is False
    assert res["log"][-1]["step"] == 3


def test_unlearn_cli_refuses_a_non_testbed_folder(tmp_path):
    r = CliRunner().invoke(app, ["testbed", "unlearn", "--testbed", str(tmp_path), "--out", str(tmp_path / "o")])
    from rotelab.errors import RotelabError

    assert isinstance(r.exception, RotelabError) and "not a testbed folder" in str(r.exception)
    assert not (tmp_path / "o").exists()


def test_retrain_control_never_saw_the_forget_set(tiny_testbed, tmp_path):
    run = RunFolder(tmp_path, command="testbed unlearn", options={}, seed=0)
    res = unlearn(tiny_testbed, UnlearnConfig(method="retrain"), run, progress=False)
    base = json.loads((tiny_testbed / "eval.json").read_text())["mean_nll"]
    # forget facts are now as unfamiliar as holdout facts, far above the original model's forget loss
    assert res["losses"]["forget"] > base["members_facts"] + 1.0
    assert abs(res["losses"]["forget"] - res["losses"]["holdout"]) < 0.5
    assert (tmp_path / "model" / "model.safetensors").exists()
