"""The Finding Dori table at testbed scale, and the locality diagnostics.

    nice -n 10 .venv/bin/python bench/diffusion_table.py                       # after the testbed exists
    .venv/bin/rotelab diffusion testbed build --preset small --out bench/results/diffusion_small_testbed

Every stage is a run folder under --out (resumable: re-run the same command to continue).
Writes bench/results/diffusion_table.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rotelab.core.runs import RunFolder, read_json, write_json
from rotelab.diffusion import mitigate
from rotelab.diffusion.adversarial import AdversarialConfig
from rotelab.diffusion.dori import DoriConfig
from rotelab.diffusion.model import DiffusionModel
from rotelab.diffusion.replication import per_prompt_rates
from rotelab.diffusion.testbed import read_items
from rotelab.diffusion.workflows import run_detect, run_dori, run_locality, run_mitigate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--testbed", type=Path, default=Path("bench/results/diffusion_small_testbed"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/diffusion_table"))
    ap.add_argument("--n-seeds", type=int, default=4)
    ap.add_argument("--n-controls", type=int, default=6, help="this many unseen + this many singletons: detection and DoRI controls")
    ap.add_argument("--adv-steps", type=int, default=200)
    ap.add_argument("--starts", type=int, default=16, help="locality: Gaussian starts")
    ap.add_argument("--skip-locality", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)  # 2 shared cores: one thread per process wastes least under contention
    items = read_items(a.testbed)
    mem = [it for it in items if it["label"] == 1]
    controls = [it for it in items if it["split"] == "unseen"][: a.n_controls] + [it for it in items if it["split"] == "singleton"][: a.n_controls]
    load = lambda: DiffusionModel.load(a.testbed)
    t0, times = time.time(), {}

    def run(name, command, fn):
        r = RunFolder(a.out / name, command=command, options={"bench": name, **vars(a)}, seed=0)
        s = time.time()
        res = fn(r)
        times[name] = round(time.time() - s, 1)
        print(f"[{time.time() - t0:7.0f}s] {name}: done", flush=True)
        return res

    det = run("detect", "diffusion detect", lambda r: run_detect(r, load(), mem + controls, n_seeds=a.n_seeds, progress=False))
    nemo = run("nemo", "diffusion mitigate", lambda r: run_mitigate(r, load(), items, "nemo", n_seeds=a.n_seeds, progress=False))
    wanda = run("wanda", "diffusion mitigate", lambda r: run_mitigate(r, load(), items, "wanda", n_seeds=a.n_seeds, progress=False))
    cfg = DoriConfig(n_eval_seeds=a.n_seeds)
    nemo_d = run("nemo_dori", "diffusion dori", lambda r: run_dori(r, load(), mem, mitigation=mitigate.load(a.out / "nemo"), cfg=cfg, progress=False))
    wanda_d = run("wanda_dori", "diffusion dori", lambda r: run_dori(r, load(), mem, mitigation=mitigate.load(a.out / "wanda"), cfg=cfg, progress=False))
    ctrl_d = run("controls_dori", "diffusion dori", lambda r: run_dori(r, load(), controls, cfg=cfg, progress=False))
    adv = run("adversarial", "diffusion mitigate", lambda r: run_mitigate(r, load(), items, "adversarial", n_seeds=a.n_seeds,
                                                                            adv_cfg=AdversarialConfig(steps=a.adv_steps, refresh_every=15), progress=False))
    adv_d = run("adversarial_dori", "diffusion dori", lambda r: run_dori(r, DiffusionModel.load(a.out / "adversarial" / "model"), mem, cfg=cfg, progress=False))

    def row(name, r, loss, restored=None):
        return {"setting": name, "MR": r["rate"], "MR_ci": r["ci"], "generations": r["n"], "mean_similarity": r.get("mean_similarity"),
                "heldout_loss": loss, "images_replicating": restored}

    mr_mem = lambda res: res["memorized"]
    table = [
        row("no mitigation", nemo["before"], nemo["heldout_loss_before"]),
        row("NeMo", nemo["after"], nemo["heldout_loss_after"]),
        row("NeMo + DoRI", mr_mem(nemo_d), nemo["heldout_loss_after"], f"{nemo_d['memorized']['images_restored']}/{len(mem)}"),
        row("Wanda", wanda["after"], wanda["heldout_loss_after"]),
        row("Wanda + DoRI", mr_mem(wanda_d), wanda["heldout_loss_after"], f"{wanda_d['memorized']['images_restored']}/{len(mem)}"),
        row("adversarial FT", adv["after"], adv["heldout_loss_after"]),
        row("adversarial FT + DoRI", mr_mem(adv_d), adv["heldout_loss_after"], f"{adv_d['memorized']['images_restored']}/{len(mem)}"),
        row("non-memorized + DoRI", ctrl_d["not memorized"], nemo["heldout_loss_before"], f"{ctrl_d['not memorized']['images_restored']}/{len(controls)}"),
    ]
    table[0]["mean_similarity"] = nemo["mean_similarity_before"]
    for r, k in ((table[1], nemo), (table[3], wanda), (table[5], adv)):
        r["mean_similarity"] = k["mean_similarity_after"]
    for r, name, key in ((table[0], "nemo", "before"), (table[1], "nemo", "after"), (table[3], "wanda", "after"), (table[5], "adversarial", "after")):
        sims = np.array(read_json(a.out / name / f"{key}.json")["sims"])
        r["images_replicating"] = f"{int((per_prompt_rates(sims, 0.7) >= 0.5).sum())}/{len(mem)}"
    out = {"table": table, "detect": det, "n_memorized": len(mem), "n_controls": len(controls), "n_seeds": a.n_seeds, "threshold": 0.7,
           "per_image": {"nemo_dori": nemo_d["per_image"], "wanda_dori": wanda_d["per_image"], "adversarial_dori": adv_d["per_image"],
                         "controls_dori": ctrl_d["per_image"]},
           "prompts_mitigated": {"nemo": nemo["prompts_mitigated"], "wanda": wanda["prompts_mitigated"], "adversarial": adv["prompts_mitigated"]}}
    write_json(Path("bench/results/diffusion_table.json"), {**out, "seconds": times})
    if not a.skip_locality:  # the image that replicates most often without mitigation
        before = read_json(a.out / "nemo" / "before.json")
        target = before["ids"][int(np.argmax(per_prompt_rates(np.array(before["sims"]), 0.7)))]
        loc = run("locality", "diffusion locality", lambda r: run_locality(r, load(), items, target, starts=a.starts, cfg=cfg, progress=False))
        out["locality"] = loc
    write_json(Path("bench/results/diffusion_table.json"), {**out, "seconds": times})
    for r in table:
        print(r)


if __name__ == "__main__":
    main()
