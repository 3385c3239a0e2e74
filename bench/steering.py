"""Benchmark: Dynamic Mode Steering on the ``small`` testbed; writes bench/results/steering_small.json.

Per seed (the seed draws the probe / held-out split of prompts and the diversity samples): the probe
run (diversity labels by default) and the steering eval (none, static at 4 strengths, dynamic at 4
alpha_max, gated at 2, dynamic + contrastive logits) on held-out memorized prompts, non-member
passages (cross-entropy) and paraphrased questions of trained facts.

Run: ROTELAB_THREADS=1 .venv/bin/python bench/steering.py [--testbed DIR] [--seeds 0,1,2] [--labels diversity]
(builds the small testbed into bench/results/steering_small_testbed when --testbed is not given).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from rotelab.core.io import dumps
from rotelab.core.runs import open_run
from rotelab.steering import api
from rotelab.steering.evaluate import EvalConfig
from rotelab.steering.workflows import ProbeConfig

OUT = Path(__file__).parent / "results"


def testbed(path: str | None) -> Path:
    if path:
        return Path(path)
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    d = OUT / "steering_small_testbed"
    with open_run(d, "testbed build", {"preset": "small"}, seed=0) as run:  # resumes a finished build
        build_testbed(get_preset("small"), run, seed=0, progress=False)
    return d


def one_seed(tb: Path, seed: int, labels: str) -> dict:
    folder = OUT / f"steering_small_s{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh measurement (the API would resume a finished run)
    pdir, edir = folder / "probe", folder / "eval"
    t0 = time.process_time()
    api.probe(tb, out=pdir, config=ProbeConfig(labels=labels), seed=seed, progress=False)
    t1 = time.process_time()
    res = api.evaluate(tb, pdir, out=edir, config=EvalConfig(contrastive_beta=1.0), progress=False)
    summ = json.loads((pdir / "probe_summary.json").read_text())
    return {"seed": seed, "probe": {k: summ[k] for k in ("site", "position", "auroc", "auroc_ci", "label_counts", "agreement", "diversity_by_group", "n_train", "n_test")} | {"causal": summ["causal"]},
            "eval": res, "cpu_seconds": {"probe": t1 - t0, "eval": time.process_time() - t1}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--testbed")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--labels", default="diversity")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tb = testbed(a.testbed)
    runs = [one_seed(tb, int(s), a.labels) for s in a.seeds.split(",")]
    preset = json.loads((tb / "manifest.json").read_text()).get("preset", {})
    out = {"testbed": str(tb), "testbed_preset": {k: preset.get(k) for k in ("name", "model", "train", "book_copies", "n_member_passages")},
           "labels": a.labels, "runs": runs, "wall_seconds": time.perf_counter() - t0}
    (OUT / "steering_small.json").write_text(dumps(out) + "\n")
    for r in runs:
        print(f"seed {r['seed']}: probe {r['probe']['site']} AUROC {r['probe']['auroc']:.3f} causal={r['probe']['causal'].get('causal')}")
        for row in r["eval"]["rows"]:
            v = row["verbatim"]
            print(f"  {row['condition']:42s} verbatim {v['rate']:.3f} ({v['hits']}/{v['n']})  CE {row['ce']:.4f} ({100 * (row.get('ce_change') or 0):+.2f}%)  para {row['paraphrase_accuracy']['rate']}")
