"""Issue 17 for the capacity commands: one JSON document with --json, checks in the API before any
run folder, resume only from work on the same options (else refuse, or recompute with --overwrite)."""

import json

import pytest
from typer.testing import CliRunner

from rotelab.capacity import api
from rotelab.capacity.cli import app
from rotelab.capacity.cot.config import CotConfig
from rotelab.capacity.robust.config import RobustConfig
from rotelab.errors import RotelabError

runner = CliRunner()
TINY = ["robust", "--n", "6", "--d", "2", "--rhos", "0.3", "--widths", "16", "--depths", "1", "--seeds", "0", "--steps", "200"]


def _refused(args, message):
    r = runner.invoke(app, args)
    assert isinstance(r.exception, RotelabError), (r.output, r.exception)
    assert message in str(r.exception) and "\n" not in str(r.exception)


def test_json_is_exactly_one_document_with_progress_bars_on(tmp_path):
    r = runner.invoke(app, [*TINY, "--out", str(tmp_path / "r"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["per_rho"][0]["rho"] == 0.3
    r = runner.invoke(app, ["bounds", "--n", "16", "--d", "4", "--rho", "0.6", "--json"])
    assert json.loads(r.stdout)["n"] == 16


def test_rerun_with_other_options_is_refused_or_recomputed(tmp_path):
    out = tmp_path / "r"
    first = runner.invoke(app, [*TINY, "--out", str(out), "--quiet", "--json"])
    assert first.exit_code == 0, first.output
    _refused([*TINY[:-2], "--steps", "100", "--out", str(out), "--quiet"], "its results were computed from other options (steps: 200 -> 100)")
    again = runner.invoke(app, [*TINY[:-2], "--steps", "100", "--out", str(out), "--quiet", "--json", "--overwrite"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "manifest.json").read_text())["options"]["steps"] == 100
    assert json.loads((out / "robust/rho0.3_s0.json").read_text())["trials"][0]["steps"] <= 100  # recomputed, not reused


@pytest.mark.parametrize("call, message", [
    (lambda out: api.robust(out=out, config=RobustConfig(rhos=(0.5, 1.2))), "--rhos values must be in (0, 1); got '0.5,1.2'"),
    (lambda out: api.robust(out=out, config=RobustConfig(seeds=())), "--seeds values must be >= 0; got ''"),
    (lambda out: api.cot(out=out, config=CotConfig(w_min=40)), "w_min must be in [1, --w-max = 32]; got 40"),
    (lambda out: api.cot(out=out, config=CotConfig(arms=("cot", "tot"))), "arms must be one of no_cot, cot; got 'tot'"),
])
def test_api_checks_its_config_before_any_run_folder(tmp_path, call, message):
    with pytest.raises(RotelabError) as e:
        call(tmp_path / "never")
    assert str(e.value) == message and not (tmp_path / "never").exists()


@pytest.mark.parametrize("args, message", [
    (["--n", "0", "--d", "4", "--rho", "0.5"], "--n must be >= 1; got 0"),
    (["--n", "10", "--d", "4", "--rho", "1"], "--rho values must be in (0, 1); got '1'"),
])
def test_bounds_refuses_bad_values_in_one_line(args, message):
    _refused(["bounds", *args, "--json"], message)
