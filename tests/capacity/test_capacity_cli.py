"""The commands: validation errors name the option; a tiny robust run writes the report section."""

import json

import pytest
from typer.testing import CliRunner

from rotelab.capacity.cli import app
from rotelab.errors import RotelabError

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["robust", "--rhos", "0.5,1.2"], "--rhos values must be in (0, 1)"),
    (["robust", "--dataset", "frame", "--n", "20", "--d", "4"], "--n <= 2 * --d = 8"),
    (["robust", "--mode", "fgsm"], "--mode must be one of ibp, pgd"),
    (["cot", "--sizes", "8,x"], "--sizes must be comma-separated integers"),
    (["cot", "--precision", "fp4"], "--precision must be one of"),
    (["cot", "--length", "2", "--sizes", "32"], "--length 2 gives 16 strings"),
])
def test_bad_options_fail_with_one_line_before_any_run_folder(tmp_path, args, message):
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert isinstance(res.exception, RotelabError) and message in str(res.exception)
    assert not (tmp_path / "run").exists()


def test_bounds_prints_lower_bound_and_unverified_regimes():
    res = runner.invoke(app, ["bounds", "--n", "16", "--d", "4", "--rho", "0.6", "--json"])
    s = json.loads(res.output)
    assert s["lower_bound"] == pytest.approx((0.36 * 4 + 1) * 4 + 1.25 * 4)
    assert "guesses" in s["unverified"]


def test_robust_run_writes_summary_figures_report_and_resumes(tmp_path):
    args = ["robust", "--out", str(tmp_path), "--n", "6", "--d", "2", "--rhos", "0.3", "--widths", "16",
            "--depths", "1", "--seeds", "0", "--steps", "200", "--quiet", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["per_rho"][0]["p_star_median"] == 2 * 16 + 16 + 17 * 2
    assert (tmp_path / "figures/capacity_robust_pstar.png").exists()
    assert "Robust memorization in ReLU nets" in (tmp_path / "report.html").read_text()
    res2 = runner.invoke(app, args)  # resumes: the finished rho point is read, not retrained
    assert json.loads(res2.output)["points"] == out["points"]


def test_cot_run_writes_json_summary_with_slopes_and_conditions(tmp_path):
    args = ["cot", "--out", str(tmp_path), "--sizes", "2,4,8", "--w-max", "6", "--depths", "1", "--seeds", "0", "--cond-seeds", "0",
            "--steps", "100", "--single-n-max", "4", "--quiet", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["slopes"]) == {"no_cot", "cot"} and len(out["p_star"]["cot"]) == 3
    assert out["conditions"]["prefix_cot_none_fp32"]["prediction"] == "fail"
    assert (tmp_path / "figures/capacity_cot_pstar.png").exists()
