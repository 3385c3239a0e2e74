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


# -- the stop is calibrated on stop_calibration, never on the holdout an evaluation uses -------------
def _copy(testbed, dest):
    import shutil

    shutil.copytree(testbed, dest, ignore=shutil.ignore_patterns(".rotelab.lock"))
    return dest


def test_strengths_are_multiples_of_the_stop_calibration_loss(ga_run, tiny_testbed):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from rotelab.testbed.splits import read_split
    from rotelab.testbed.unlearn import mean_nll

    _, res = ga_run
    tok = PreTrainedTokenizerFast.from_pretrained(tiny_testbed / "model")
    model = AutoModelForCausalLM.from_pretrained(tiny_testbed / "model")
    stop = read_split(tiny_testbed, "stop_calibration")
    loss = mean_nll(model, [x[:80] for x in tok([r["text"] for r in stop])["input_ids"]])
    assert res["stop_calibration"] == {"split": "stop_calibration", "n_samples": len(stop), "loss": pytest.approx(loss, rel=1e-9)}
    assert res["targets"] == {"1.0x": pytest.approx(loss), "1.5x": pytest.approx(1.5 * loss)}
    assert res["targets"]["1.0x"] != pytest.approx(res["base_losses"]["holdout"], abs=1e-6)


def test_the_holdout_never_chooses_the_checkpoint_and_the_stop_split_is_an_input(unlearn_run, tiny_testbed, tmp_path):
    """Another holdout, the same checkpoints (before the stop-calibration split the targets moved
    with it); another stop-calibration split, a refused resume."""
    from rotelab.errors import RotelabError
    from rotelab.testbed import api

    tb = _copy(tiny_testbed, tmp_path / "tb")
    holdout = tb / "splits" / "holdout.jsonl"
    holdout.write_text("".join(holdout.read_text().splitlines(True)[:20]))  # 4 of the 24 holdout people
    res = api.unlearn(tb, method="graddiff", lr=1e-3, max_steps=60, out=tmp_path / "u", progress=False)
    want = json.loads((unlearn_run / "unlearn.json").read_text())
    assert res["targets"] == want["targets"] and res["base_losses"]["holdout"] != want["base_losses"]["holdout"]
    assert {k: v["step"] for k, v in res["checkpoints"].items()} == {k: v["step"] for k, v in want["checkpoints"].items()}
    stop = tb / "splits" / "stop_calibration.jsonl"
    stop.write_text("".join(stop.read_text().splitlines(True)[5:]))
    with pytest.raises(RotelabError, match="stop_calibration changed"):
        api.unlearn(tb, method="graddiff", lr=1e-3, max_steps=60, out=tmp_path / "u", progress=False)


@pytest.mark.parametrize("missing", ["stop_calibration", "member_prefix_pool"])
def test_a_testbed_from_before_the_stop_split_is_refused_with_how_to_rebuild_it(tiny_testbed, tmp_path, missing):
    tb = _copy(tiny_testbed, tmp_path / "tb")
    (tb / "splits" / f"{missing}.jsonl").unlink()
    r = CliRunner().invoke(app, ["testbed", "unlearn", "--testbed", str(tb), "--out", str(tmp_path / "u")])
    from rotelab.errors import RotelabError

    msg = str(r.exception)
    assert isinstance(r.exception, RotelabError) and "\n" not in msg
    assert f"{missing}.jsonl: missing" in msg and f"rotelab testbed build --preset tiny --seed 0 --out {tb} --overwrite" in msg
    assert not (tmp_path / "u").exists()


def test_retrain_trains_on_every_trained_sample_not_forgotten(tiny_testbed, tmp_path):
    """retain + member_prefix_pool: the model's training tokens minus the forget set's."""
    from transformers import PreTrainedTokenizerFast

    from rotelab.testbed.splits import read_split

    run = RunFolder(tmp_path, command="testbed unlearn", options={}, seed=0)
    res = unlearn(tiny_testbed, UnlearnConfig(method="retrain"), run, progress=False)
    tok = PreTrainedTokenizerFast.from_pretrained(tiny_testbed / "model")
    forget = read_split(tiny_testbed, "forget")
    forget_tokens = sum(min(len(x), 80) * r["copies"] for x, r in zip(tok([r["text"] for r in forget])["input_ids"], forget))
    trained = json.loads((tiny_testbed / "manifest.json").read_text())["training"]["model"]["tokens"]
    assert res["training"]["tokens"] == trained - forget_tokens
