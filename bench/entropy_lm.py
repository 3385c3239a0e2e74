"""Experiment 1: GAPT vs CE-only language modelling on shipped books, equal token budget, same seeds.

    nice -n 10 .venv/bin/python bench/entropy_lm.py --seeds 0 1 2 --steps 400

Writes bench/results/entropy_lm.json (per seed: held-out CE, MBE per layer, phase switches) and the
phase-timeline figure bench/results/entropy_lm/timeline.png. Paper (GPT-2 124M, FineWeb, 1,750 steps):
GAPT lowers MBE by 50% and cross-entropy by 4.8%.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from rotelab.core.runs import RunFolder, read_parquet, write_json
from rotelab.entropy.gapt import GateConfig
from rotelab.entropy.gapt_train import GaptConfig
from rotelab.entropy.lm_train import LMTrainConfig, train_lm

OUT = Path(__file__).parent / "results"


def t_interval(x: list[float]) -> list[float] | None:
    """95% Student-t interval of the mean over seeds (None for one seed)."""
    from scipy import stats

    if len(x) < 2:
        return None
    m, se = float(np.mean(x)), float(np.std(x, ddof=1) / np.sqrt(len(x)))
    h = float(stats.t.ppf(0.975, len(x) - 1)) * se
    return [m - h, m + h]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--p-m", type=int, default=25)  # the paper's 125 / 75 scaled to a 400-step run
    ap.add_argument("--p-a", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gate = GateConfig(p_m=args.p_m, p_a=args.p_a)
    res: dict = {"config": vars(args), "runs": {}}
    timelines = {}
    for seed in args.seeds:
        for obj in ("ce", "gapt"):
            cfg = LMTrainConfig(preset=args.preset, n_layer=args.n_layer, seed=seed, gapt=GaptConfig(objective=obj, steps=args.steps, warmup_steps=40, gate=gate))
            run = RunFolder(OUT / "entropy_lm" / f"{obj}-seed{seed}", command="entropy train", options={"bench": "entropy_lm", **vars(args)}, seed=seed)
            r = train_lm(cfg, run, progress=False)
            res["runs"][f"{obj}-seed{seed}"] = r
            st = read_parquet(run.file("steps.parquet"))
            if seed == args.seeds[0]:
                timelines[obj] = [dict(zip(st, v)) for v in zip(*st.values())]
            print(obj, seed, "heldout CE", round(r["heldout_ce"], 4), "MBE", np.round(r["mbe_layers"], 3).tolist(), "switches", len(r["switches"]), flush=True)
    mid = list(range(2, args.n_layer))  # the gated (middle) blocks
    d_ce = [100 * (res["runs"][f"gapt-seed{s}"]["heldout_ce"] / res["runs"][f"ce-seed{s}"]["heldout_ce"] - 1) for s in args.seeds]
    d_mbe = [100 * (np.mean([res["runs"][f"gapt-seed{s}"]["mbe_layers"][i] for i in mid]) / np.mean([res["runs"][f"ce-seed{s}"]["mbe_layers"][i] for i in mid]) - 1) for s in args.seeds]
    res["summary"] = {"heldout_ce_change_pct": {"per_seed": d_ce, "mean": float(np.mean(d_ce)), "ci95_t": t_interval(d_ce)},
                      "middle_mbe_change_pct": {"per_seed": d_mbe, "mean": float(np.mean(d_mbe)), "ci95_t": t_interval(d_mbe)},
                      "paper": {"heldout_ce_change_pct": -4.8, "mbe_change_pct": -50.0}}
    write_json(OUT / "entropy_lm.json", res)
    from rotelab.entropy.figures import timeline_figure

    run = RunFolder(OUT / "entropy_lm", command="bench entropy_lm", options=vars(args))
    run.figure("timeline", timeline_figure(timelines, title=f"preset {args.preset}, {args.n_layer} blocks, seed {args.seeds[0]}, {args.steps} steps"))
    print(res["summary"])


if __name__ == "__main__":
    main()
