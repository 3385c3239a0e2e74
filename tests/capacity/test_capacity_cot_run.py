"""A micro ``run_cot``: summary, figures and the report section exist and agree with the checker."""

from rotelab.capacity.cot.config import CotConfig
from rotelab.capacity.cot.experiment import run_cot
from rotelab.core.runs import RunFolder
from rotelab.report import build_report


def test_run_cot_writes_slopes_conditions_and_report(tmp_path):
    cfg = CotConfig(sizes=(2, 4, 8), w_max=8, depths=(1,), seeds=(0,), steps=100, patience=50, single_n_max=4, prefix_pairs=2,
                    precisions=("fp32",), cond_seeds=(0, 1), cond_steps=100)
    run = RunFolder(tmp_path, command="capacity cot", options={}, seed=0)
    s = run_cot(run, cfg, progress=False)
    assert set(s["slopes"]) == {"no_cot", "cot"} and set(s["slopes_tail"]) == {"no_cot", "cot"}
    assert s["checks"]["single_symbol_parity"]["no_cot"]["holds"] is False
    assert s["checks"]["single_symbol_threshold"]["no_cot"]["holds"] is False
    assert s["checks"]["prefix_conflicts"]["cot"]["holds"] is False
    for key in ("single_parity_no_cot_none_fp32", "single_threshold_no_cot_none_fp32", "prefix_cot_none_fp32"):
        c = s["conditions"][key]
        assert c["prediction"] == "fail" and len(c["accuracy"]) == 2
        assert max(c["accuracy"]) <= c["bound"] + 1e-6 and c["verdict"].startswith("as predicted")  # never beats the bound
    assert s["conditions"]["single_parity_cot_none_fp32"]["largest_n"] is not None
    for name in ("capacity_cot_pstar", "capacity_cot_conditions"):
        assert (tmp_path / f"figures/{name}.png").exists()
    html = build_report(tmp_path).read_text()
    assert "Chain of thought (Yu, Gao, Zhang 2025)" in html and "verdict" in html
