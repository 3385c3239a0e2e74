"""The unlearning-method registry: each method overrides its loss (NPO only its forget term), the
registry is the command's only list, and a new method is one module whose decorator registers it."""

import importlib.util
import json
import sys
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.errors import RotelabError
from rotelab.testbed import api
from rotelab.testbed.methods import GA, METHODS, NPO, Batch, GradDiff, Method, Retrain
from rotelab.testbed.unlearn import UnlearnConfig

runner = CliRunner()


def test_builtin_methods_are_registered_classes_npo_extending_graddiff():
    assert METHODS.names()[:4] == ["ga", "graddiff", "npo", "retrain"]
    assert [METHODS[n].obj for n in ("ga", "graddiff", "npo", "retrain")] == [GA, GradDiff, NPO, Retrain]
    assert issubclass(NPO, GradDiff) and issubclass(GradDiff, GA) and NPO.loss is GradDiff.loss
    assert NPO.needs_reference and NPO.uses_retain and not GA.uses_retain and Retrain.run is not Method.run
    with pytest.raises(TypeError, match="must be a Method"):
        METHODS.register("not-a-method", object)


def test_losses_match_their_formulas():
    cfg = UnlearnConfig(beta=0.5, retain_weight=2.0, forget_weight=3.0)
    f = Batch(torch.tensor([-10.0, -30.0]), torch.tensor([5.0, 10.0]), torch.tensor([-12.0, -25.0]))
    r = Batch(torch.tensor([-4.0, -6.0]), torch.tensor([2.0, 3.0]))
    ga = 3.0 * ((-10 / 5) + (-30 / 10)) / 2  # gamma * mean token log-lik of forget
    nll_r = -((-4 / 2) + (-6 / 3)) / 2
    npo = 3.0 * (2 / 0.5) * torch.log1p(torch.exp(0.5 * (f.logp - f.ref_logp))).mean()
    assert float(GA(cfg).loss(f, None)) == pytest.approx(ga)
    assert float(GradDiff(cfg).loss(f, r)) == pytest.approx(ga + 2.0 * nll_r)
    assert float(NPO(cfg).loss(f, r)) == pytest.approx(float(npo) + 2.0 * nll_r)


def test_unlearn_help_lists_every_registered_method():
    r = runner.invoke(app, ["testbed", "unlearn", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and f"Unlearning method: {' | '.join(METHODS.names())}." in r.stdout


PLUGIN = '''
"""Token-averaged gradient ascent: L = sum_F log pi(y|x) / sum_F |y| (longer samples weigh more)."""

from rotelab.testbed.methods import GA, METHODS


@METHODS.register("ga-tokens")
class TokenGA(GA):
    """Gradient ascent on the forget set's token-averaged log-likelihood."""

    def forget_loss(self, forget):
        return forget.logp.sum() / forget.n_tokens.sum()
'''


@pytest.fixture()
def plugin(tmp_path):
    """A new method from one new module (its decorator its only registry line), removed afterwards."""
    path = tmp_path / "token_ga.py"
    path.write_text(textwrap.dedent(PLUGIN))
    spec = importlib.util.spec_from_file_location("token_ga_plugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        METHODS.unregister("ga-tokens")
        sys.modules.pop(spec.name, None)


def test_a_method_from_one_new_module_runs_through_the_api_and_the_cli(plugin, tiny_testbed, tmp_path):
    assert METHODS["ga-tokens"].obj is plugin.TokenGA
    res = api.unlearn(tiny_testbed, method="ga-tokens", lr=1e-3, max_steps=60, out=tmp_path / "api", progress=False)
    assert res["method"] == "ga-tokens" and res["checkpoints"]["1.0x"]["reached"]  # it really unlearned
    assert res["checkpoints"]["1.0x"]["forget"] >= res["base_losses"]["holdout"] > 2 * res["base_losses"]["forget"]
    assert (tmp_path / "api" / "checkpoints" / "1.0x" / "model.safetensors").exists()
    assert "Method <b>ga-tokens</b>" in (tmp_path / "api" / "report.html").read_text()
    r = runner.invoke(app, ["testbed", "unlearn", "--testbed", str(tiny_testbed), "--method", "ga-tokens", "--lr", "1e-3", "--max-steps", "3", "--out", str(tmp_path / "cli"), "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 3 and json.loads((tmp_path / "cli" / "manifest.json").read_text())["config"]["method"] == "ga-tokens"


def test_an_unregistered_method_is_refused_again(tiny_testbed, tmp_path):
    assert "ga-tokens" not in METHODS
    with pytest.raises(RotelabError, match="unknown unlearning method 'ga-tokens'"):
        api.unlearn(tiny_testbed, method="ga-tokens", out=tmp_path / "o")
    assert not (tmp_path / "o").exists()
