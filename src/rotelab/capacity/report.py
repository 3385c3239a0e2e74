"""Report section of ``rotelab capacity cot`` and ``rotelab capacity robust``."""

from __future__ import annotations

import html
from pathlib import Path

from rotelab.core.io import read_json
from rotelab.report.html import img, table
from rotelab.report.registry import register_section


def _fig(run: Path, name: str, alt: str) -> str:
    p = run / f"figures/{name}.png"
    return img(p, alt=alt) if p.exists() else ""


def _cot(run: Path) -> str:
    s = read_json(run / "cot/summary.json")
    c = s["config"]
    tail = s.get("slopes_tail", {})
    rows = [{"arm": arm, "slope": f.get("slope"), "slope 95% CI": f.get("slope_ci"), "points": f.get("n_points"),
             "slope without smallest N": tail.get(arm, {}).get("slope"), "its CI": tail.get(arm, {}).get("slope_ci"),
             "note": f.get("slope_reason")} for arm, f in s["slopes"].items()]
    pstar = [{"arm": arm, "N": p["n"], "seed": p["seed"], "P*": p["p_star"], "width": p.get("width"), "depth": p.get("depth"),
              "trials": p.get("trials"), "cpu s": p.get("cpu_seconds"), "note": p.get("p_star_reason")}
             for arm, ps in s["p_star"].items() for p in ps]
    checks = [{"family": name, "n": ch["n"], "no-CoT condition holds": ch["no_cot"]["holds"], "no-CoT max acc": ch["no_cot"]["max_accuracy"],
               "CoT condition holds": ch.get("cot", {}).get("holds"), "CoT max acc": ch.get("cot", {}).get("max_accuracy")}
              for name, ch in s["checks"].items()]
    cond = [{"run": k, "n": v["n"], "predicted": v["prediction"], "bound": v["bound"], "memorised per seed": v["accuracy"],
             "largest n (single)": v["largest_n"], "verdict": v["verdict"], "params": v["params"]}
            for k, v in s["conditions"].items()]
    return "\n".join([
        "<h3>Chain of thought (Yu, Gao, Zhang 2025)</h3>",
        f"<p>P*(N): smallest transformer (widths {c['w_min']}..{c['w_max']} by galloping + bisection, depths {c['depths']}) memorising "
        f"100% of N random-label strings (length {c['length']}, alphabet {c['alphabet']}); CoT = {c['pause']} pause tokens; positions "
        f"{html.escape(c['pos'])}, precision {c['precision']}, seeds {c['seeds']}, at most {c['steps']} steps per candidate "
        f"(a candidate stalled {c['patience']} steps counts as failed). The paper proves Theta(N) up to log factors in every arm: "
        "a slope near 1 agrees. P* depends on the training budget: it is what gradient descent finds, an upper estimate of the true minimum.</p>",
        table(rows), _fig(run, "capacity_cot_pstar", "P* vs N"), table(pstar),
        f"<h4>Condition checker and separating families (NoPE unless 'learned'; seeds {c['cond_seeds']})</h4>", table(checks),
        _fig(run, "capacity_cot_conditions", "condition families"), table(cond),
    ])


def _robust(run: Path) -> str:
    s = read_json(run / "robust/summary.json")
    c = s["config"]
    rows = [{"rho": r["rho"], "median P*": r["p_star_median"], "P* range": [r["p_star_min"], r["p_star_max"]] if r["p_star_min"] is not None else None,
             "seeds found": f"{r['seeds_found']}/{r['seeds']}", "Thm 3.1 LB (no const.)": r["lower_bound"],
             "certified (last net)": r["certified_last"], "attacked (last net)": r["attacked_last"]} for r in s["per_rho"]]
    return "\n".join([
        "<h3>Robust memorization in ReLU nets (Kim, Moon, Yun 2025)</h3>",
        f"<p>N={c['n']}, d={c['d']}, data {c['dataset']}, {c['mode']} training, seeds {c['seeds']}; mu = rho eps_D. "
        "Certified = interval bound propagation (sound); attacked = PGD-l2 "
        f"({c['pgd_steps']} steps x {c['pgd_restarts']} restarts); gap = neither. The lower bound is plotted up to one fitted constant "
        "(gradient training is not expected to reach the paper's constructions).</p>",
        table(rows), _fig(run, "capacity_robust_pstar", "P* vs rho"), _fig(run, "capacity_robust_shares", "certified / attacked"),
        "<h4>Every trained net</h4>", table(s["trials"]),
    ])


@register_section("capacity", title="Memorization capacity", order=70)
def render(run: Path, manifest: dict) -> str | None:
    parts = []
    if (run / "cot/summary.json").exists():
        parts.append(_cot(run))
    if (run / "robust/summary.json").exists():
        parts.append(_robust(run))
    return "\n".join(parts) or None
