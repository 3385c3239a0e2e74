"""REMIND on the testbed: unlearn with GA, GradDiff, NPO (checkpoints at 1.0x and 1.5x the holdout
loss) plus the retrain null control, then REMIND and every baseline on retained / forgotten /
holdout facts (``rotelab.membership.remind.api.remind``, one run folder per model under
``--work``). Writes bench/results/remind_testbed_<preset>_s<seeds>.json and prints a table.

    nice -n 10 python bench/remind_testbed.py                       # small preset, seeds 0,1,2 (hours on CPU)
    nice -n 10 python bench/remind_testbed.py --preset tiny --seeds 0 --variants 4 --work /tmp/remind_bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rotelab.core.data import read_jsonl
from rotelab.core.runs import RunFolder
from rotelab.membership.remind.api import remind
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.suite import RemindConfig
from rotelab.testbed.build import build_testbed
from rotelab.testbed.presets import get_preset
from rotelab.testbed.unlearn import UnlearnConfig, unlearn

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", type=int, default=8)
    ap.add_argument("--work", type=Path, default=Path("runs/bench-remind"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        tb = a.work / f"{a.preset}-s{seed}" / "testbed"
        if not (tb / "eval.json").exists():  # reopening a finished testbed's RunFolder would drop its manifest keys
            build_testbed(get_preset(a.preset), RunFolder(tb, command="testbed build", options={"preset": a.preset}, seed=seed), seed=seed, progress=False)
        rd = lambda n: read_jsonl(tb / "splits" / f"{n}.jsonl")  # noqa: E731
        sets = {"retained": [s for s in rd("retain") if s.meta.get("kind") == "fact"], "forgotten": rd("forget"), "holdout": rd("holdout")}
        models = {}
        for m in ("retrain", "graddiff", "npo", "ga"):  # the null control first
            ur = RunFolder(tb.parent / f"unlearn-{m}", command="testbed unlearn", options={"method": m}, seed=seed)
            ur.step("unlearn", lambda: unlearn(tb, UnlearnConfig(method=m, seed=seed), ur, progress=False))
            if m == "retrain":
                models["retrain (null)"] = ur.path / "model"
            else:
                for c in sorted(p.name for p in (ur.path / "checkpoints").iterdir()):
                    models[f"{m} {c}"] = ur.path / "checkpoints" / c
        models["base (no unlearning)"] = tb
        for name, path in models.items():
            out = tb.parent / f"remind-{name.split()[0]}-{name.split()[-1].strip('()')}"
            t = time.time()
            cfg = RemindConfig(probe=ProbeConfig(k=a.variants, seed=seed), seed=seed)
            m = remind(path, sets["retained"], sets["forgotten"], sets["holdout"], paraphrases=[], out=out, config=cfg, cache=None, progress=False)
            row = {"seed": seed, "model": name, "seconds": round(time.time() - t, 1)}
            for meth, block in [("remind", m["remind"])] + list(m["baselines"].items()):
                row[meth] = {k: block.get(k) for k in ("auc_forgotten_vs_holdout", "auc_forgotten_vs_holdout_ci", "tpr_at_1pct_fpr_forgotten_vs_holdout", "tpr_at_1pct_fpr_forgotten_vs_holdout_reason", "auc_3way_macro")}
            row["n"] = m["remind"]["n"]
            rows.append(row)
            print(f"seed {seed} {name:22s} " + "  ".join(f"{k} {row[k]['auc_forgotten_vs_holdout']:.3f}" for k in ("remind", "loss", "minkpp", "neighbourhood", "rouge_l") if row[k]["auc_forgotten_vs_holdout"] is not None), flush=True)
            Path("bench/results").mkdir(parents=True, exist_ok=True)
            Path(f"bench/results/remind_testbed_{a.preset}_s{a.seeds.replace(',', '-')}.json").write_text(json.dumps({"preset": a.preset, "variants": a.variants, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
