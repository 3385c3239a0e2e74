"""A micro ``run_cot``: summary, figures and the report section exist and agree with the checker."""

from rotelab.capacity.cot import CotConfig, run_cot
from rotelab.core.runs import RunFolder
from rotelab.report import build_report


def test_run_cot_writes_slopes_conditions_and_report(tmp_path):
    cfg = CotConfig(sizes=(2, 4, 8), widths=(8,), seeds=(0,), steps=100, single_n_max=3, prefix_pairs=2, precisions=("fp32",))
    run = RunFolder(tmp_path, command="capacity cot", options={}, seed=0)
    s = run_cot(run, cfg, progress=False)
    assert set(s["slopes"]) == {"no_cot", "cot"}
    assert s["checks"]["single_symbol"]["no_cot"]["holds"] is False
    assert s["checks"]["prefix_conflicts"]["cot"]["holds"] is False
    for run_key, family, arm in (("single_no_cot_none_fp32", "single_symbol", "no_cot"), ("prefix_cot_none_fp32", "prefix_conflicts", "cot")):
        assert s["conditions"][run_key]["memorized"] <= s["checks"][family][arm]["max_accuracy"] + 1e-6  # never beats the bound
    for name in ("capacity_cot_pstar", "capacity_cot_conditions"):
        assert (tmp_path / f"figures/{name}.png").exists()
    html = build_report(tmp_path).read_text()
    assert "Chain of thought (Yu, Gao, Zhang 2025)" in html
