"""The Finding Dori table at testbed scale, and the locality diagnostics.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/diffusion_table.py     # ~45 min on 2 busy cores (+5 min testbed)
    .venv/bin/python bench/diffusion_table.py --smoke                          # tiny testbed, a few minutes: checks the pipeline

Runs with no arguments: the small testbed is built under --testbed when it is not there yet.
Every stage is a run folder under --out made by the Python API (rotelab.diffusion.api), so a
re-run resumes, and a re-run with other options is refused (--overwrite recomputes). Writes --json
(default bench/results/diffusion_final.json).

Rows (τ = 0.7 on the centred pixel cosine; curves over τ in the JSON): no mitigation, the null
prompt (the floor: the unconditional model lands on some memorized images by itself), NeMo,
NeMo + DoRI, Wanda, Wanda + DoRI, adversarial fine-tuning, adversarial FT + DoRI, controls + DoRI.
Each rate has a Clopper-Pearson interval over generations and a bootstrap interval over images
(generations of one image are not independent).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rotelab.core.io import read_json, write_json
from rotelab.diffusion import api
from rotelab.diffusion.adversarial import AdversarialConfig
from rotelab.diffusion.dori import DoriConfig
from rotelab.diffusion.evaluate import item_tensors
from rotelab.diffusion.mitigate import load_mitigation
from rotelab.diffusion.model import GUIDANCE, DiffusionModel
from rotelab.diffusion.replication import per_prompt_rates, rate, rate_curve, replication_scores
from rotelab.diffusion.testbed import read_items
from rotelab.diffusion.workflows import read_dori

SMOKE = ["--preset", "tiny", "--testbed", "bench/results/diffusion_tiny_testbed", "--out", "bench/results/diffusion_smoke",
         "--json", "bench/results/diffusion_smoke.json", "--n-seeds", "2", "--n-controls", "2", "--adv-steps", "4", "--dori-steps", "10",
         "--starts", "2", "--max-selections", "1"]

TAU = 0.7


def bootstrap_ci(sims: np.ndarray, tau: float = TAU, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the rate when whole images (rows of ``sims`` (P, S)) are resampled."""
    s = np.asarray(sims) > tau
    if s.ndim == 1:
        s = s[:, None]
    rng = np.random.default_rng(seed)
    boots = s[rng.integers(0, len(s), (n, len(s)))].mean(axis=(1, 2))
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def describe(name: str, sims: np.ndarray, *, loss=None, note: str | None = None) -> dict:
    sims = np.asarray(sims, dtype=float)
    r = rate(sims, TAU)
    per = per_prompt_rates(sims, TAU)
    return {"setting": name, "MR": r["rate"], "k": r["k"], "n_generations": r["n"], "n_images": int(len(sims)),
            "MR_ci_clopper_pearson": r["ci"], "MR_ci_bootstrap_images": bootstrap_ci(sims),
            "mean_similarity": float(sims.mean()), "images_replicating": f"{int((per >= 0.5).sum())}/{len(sims)}",
            "per_image_MR": per.tolist(), "heldout_loss": loss, "curve": [(c["threshold"], c["rate"]) for c in rate_curve(sims)],
            **({"note": note} if note else {})}


def dori_sims(folder: Path, ids: list[str]) -> np.ndarray:
    return np.stack([np.array(read_dori(folder, i)["sims"]).ravel() for i in ids])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="the tiny testbed and few steps: " + " ".join(SMOKE))
    ap.add_argument("--testbed", type=Path, default=Path("bench/results/diffusion_small_testbed"), help="built here with --preset when missing")
    ap.add_argument("--preset", default="small", help="testbed preset when --testbed must be built")
    ap.add_argument("--out", type=Path, default=Path("bench/results/diffusion_final"))
    ap.add_argument("--json", type=Path, default=Path("bench/results/diffusion_final.json"))
    ap.add_argument("--n-seeds", type=int, default=4)
    ap.add_argument("--n-controls", type=int, default=6, help="this many unseen + this many singletons: detection and DoRI controls")
    ap.add_argument("--adv-steps", type=int, default=200)
    ap.add_argument("--dori-steps", type=int, default=50, help="Adam steps of each DoRI search")
    ap.add_argument("--starts", type=int, default=16, help="locality: Gaussian starts")
    ap.add_argument("--max-selections", type=int, default=8, help="locality: NeMo/Wanda selections on at most this many triggers")
    ap.add_argument("--skip-locality", action="store_true")
    ap.add_argument("--overwrite", action="store_true", help="recompute stages whose run folders hold results of other options")
    a = ap.parse_args(argv)
    if a.smoke:
        a = ap.parse_args([*SMOKE, *(argv or [])])
    torch.set_num_threads(1)  # 2 shared cores: one thread per process wastes least under contention
    if not (a.testbed / "items.jsonl").exists():
        api.testbed_build(out=a.testbed, preset=a.preset, progress=False)
    items = read_items(a.testbed)
    mem = [it for it in items if it["label"] == 1]
    mem_ids = [it["id"] for it in mem]
    controls = [it for it in items if it["split"] == "unseen"][: a.n_controls] + [it for it in items if it["split"] == "singleton"][: a.n_controls]
    t0, times = time.time(), {}

    kw = {"progress": False, "overwrite": a.overwrite}

    def run(name, fn):
        s = time.time()
        res = fn(a.out / name)
        times[name] = round(time.time() - s, 1)
        print(f"[{time.time() - t0:7.0f}s] {name}: done", flush=True)
        return res

    det = run("detect", lambda out: api.detect(a.testbed, mem + controls, out=out, n_seeds=a.n_seeds, **kw))
    # the floor: the null prompt at the evaluation seeds, scored against every memorized image
    m0 = DiffusionModel.load(a.testbed)
    pix, _, _ = item_tensors(m0, mem)
    null_imgs = m0.sample(m0.null_embedding(), range(a.n_seeds))
    null_sims = np.stack([replication_scores(null_imgs, x).numpy() for x in pix])
    nemo = run("nemo", lambda out: api.mitigate(a.testbed, method="nemo", out=out, n_seeds=a.n_seeds, **kw))
    wanda = run("wanda", lambda out: api.mitigate(a.testbed, method="wanda", out=out, n_seeds=a.n_seeds, **kw))
    cfg = DoriConfig(steps=a.dori_steps, n_eval_seeds=a.n_seeds)
    run("nemo_dori", lambda out: api.dori(a.testbed, mem, mitigation=a.out / "nemo", config=cfg, out=out, **kw))
    run("wanda_dori", lambda out: api.dori(a.testbed, mem, mitigation=a.out / "wanda", config=cfg, out=out, **kw))
    run("controls_dori", lambda out: api.dori(a.testbed, controls, config=cfg, out=out, **kw))
    adv = run("adversarial", lambda out: api.mitigate(a.testbed, method="adversarial", config=AdversarialConfig(steps=a.adv_steps, refresh_every=15),
                                                      pruning=a.out / "nemo", out=out, n_seeds=a.n_seeds, **kw))
    run("adversarial_dori", lambda out: api.dori(a.out / "adversarial", mem, config=cfg, out=out, **kw))

    sims = lambda name, key: np.array(read_json(a.out / name / f"{key}.json")["sims"])  # noqa: E731
    before = sims("nemo", "before")
    d = {k: dori_sims(a.out / f"{k}_dori", mem_ids) for k in ("nemo", "wanda", "adversarial")}
    ctrl_ids = [it["id"] for it in controls]
    dc = dori_sims(a.out / "controls_dori", ctrl_ids)
    table = [
        describe("no mitigation", before, loss=nemo["heldout_loss_before"]),
        describe("null prompt (floor)", null_sims, note="the empty prompt at the same seeds, scored against each memorized image"),
        describe("NeMo", sims("nemo", "after"), loss=nemo["heldout_loss_after"]),
        describe("NeMo + DoRI", d["nemo"], loss=nemo["heldout_loss_after"]),
        describe("Wanda", sims("wanda", "after"), loss=wanda["heldout_loss_after"]),
        describe("Wanda + DoRI", d["wanda"], loss=wanda["heldout_loss_after"]),
        describe("adversarial FT", sims("adversarial", "after"), loss=adv["heldout_loss_after"]),
        describe("adversarial FT + DoRI", d["adversarial"], loss=adv["heldout_loss_after"]),
        describe("non-memorized + DoRI", dc, loss=nemo["heldout_loss_before"]),
        describe("  unseen + DoRI", dc[[i for i, it in enumerate(controls) if it["split"] == "unseen"]]),
        describe("  singletons + DoRI", dc[[i for i, it in enumerate(controls) if it["split"] == "singleton"]]),
    ]
    per_b = per_prompt_rates(before, TAU)
    restored = {}
    for k in ("nemo", "wanda", "adversarial"):
        after = per_prompt_rates(sims(k, "after"), TAU)
        dori = per_prompt_rates(d[k], TAU)
        stopped = [i for i in range(len(mem)) if per_b[i] >= 0.5 and after[i] < 0.5]
        restored[k] = {"replicating_before": int((per_b >= 0.5).sum()), "stopped_by_mitigation": len(stopped),
                       "restored_by_dori_among_stopped": int(sum(dori[i] >= 0.5 for i in stopped)), "stopped_ids": [mem_ids[i] for i in stopped],
                       "MR_dori_on_stopped": rate(d[k][stopped], TAU) if stopped else None,
                       "rows": [{"id": mem_ids[i], "MR_before": float(per_b[i]), "MR_mitigated": float(after[i]), "MR_mitigated+DoRI": float(dori[i])}
                                for i in range(len(mem))]}
    out = {"table": table, "restored": restored, "detect": det, "n_memorized": len(mem), "n_controls": len(controls), "n_seeds": a.n_seeds,
           "threshold": TAU, "guidance": GUIDANCE,
           "selection": {"nemo": nemo["selection"], "wanda": wanda["selection"], "nemo_selection_mitigated": nemo["selection_mitigated"],
                         "wanda_selection_mitigated": wanda["selection_mitigated"], "tau_signal": nemo["tau_signal"]},
           "iou_original_prompts": {"nemo": nemo["iou"], "wanda": wanda["iou"]}}
    nm = load_mitigation(a.out / "nemo")
    n_value = sum(len(mu) for mu, _ in nm.stats.values())  # every value neuron
    real = [i for i, r in nm.per_item.items() if r["mitigated"] and 0 < sum(map(len, r["selection"].values())) < n_value]
    cross = nemo["iou"]["nemo_vs_wanda_value_neurons"]
    out["iou_summary"] = {
        "nemo_vs_wanda_value_neurons_original_prompts": float(np.mean([cross[i] for i in real if i in cross])) if real else None,
        "nemo_vs_wanda_n_prompts": len(real),
        "nemo_vs_wanda_note": "prompts NeMo mitigated with a proper subset of the value neurons (a selection of every neuron gives IoU 1 by construction)",
        "nemo_across_prompts_pooled": nemo["iou"]["across_prompts"]["all"]["mean"],
        "wanda_across_prompts_pooled": wanda["iou"]["across_prompts"]["all"]["mean"]}
    write_json(a.json, {**out, "seconds": times})
    if not a.skip_locality:  # the image that replicates most often without mitigation
        target = mem_ids[int(np.argmax(per_b))]
        out["locality"] = run("locality", lambda o: api.locality(a.testbed, item=target, starts=a.starts, config=cfg, max_selections=a.max_selections,
                                                                 out=o, **kw))
        iou = out["locality"].get("iou")
        if iou:
            nan_mean = lambda v: float(np.nanmean(np.array(v, dtype=float))) if len(v) and not np.isnan(np.array(v, dtype=float)).all() else None
            out["iou_summary"].update({
                "locality_item": target,
                "nemo_across_triggers_pooled": iou["nemo_across_triggers"]["all"]["mean"],
                "wanda_across_triggers_pooled": iou["wanda_across_triggers"]["all"]["mean"],
                "nemo_trigger_vs_prompt": nan_mean(iou["nemo_trigger_vs_prompt"]), "wanda_trigger_vs_prompt": nan_mean(iou["wanda_trigger_vs_prompt"]),
                "nemo_vs_wanda_value_neurons_triggers": iou["nemo_vs_wanda_value_neurons"]})
    write_json(a.json, {**out, "seconds": times, "total_seconds": round(time.time() - t0, 1)})
    for r in table:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k not in ("curve", "per_image_MR")})
    for k, v in restored.items():
        print(k, {kk: vv for kk, vv in v.items() if kk != "rows"})
    return out


if __name__ == "__main__":
    main()
