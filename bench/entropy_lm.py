"""Experiment 1: GAPT vs CE-only language modelling on shipped books, equal token budget, same seeds.

The testbed's ``tiny`` GPT-2 (d = 64) with 4 blocks, so the compression term rotates over the two
middle blocks (first and last skipped, as in the author's ``rotate`` schedule). Gate and loss with
the notes' hyperparameters, unscaled: p_m 125, p_a 75, τ_m = τ_a = 0.01, τ_spike 0.1, weight 1.
Both objectives see the same batches (same seed) and the same number of tokens. Each run starts in
a fresh folder (a finished run with the same options would otherwise be resumed).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/entropy_lm.py --seeds 0 1 2 --steps 800

Writes bench/results/entropy_lm.json (per seed: held-out and train CE, MBE per layer, phase switches)
and the phase-timeline figure bench/results/entropy_lm/figures/timeline.png.
Paper (GPT-2 124M, FineWeb, 1,750 steps): GAPT lowers MBE by 50% and cross-entropy by 4.8%.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from rotelab.core.io import write_json
from rotelab.core.runs import read_parquet
from rotelab.core.stats import seed_interval
from rotelab.entropy.api import train
from rotelab.entropy.gapt import GateConfig
from rotelab.entropy.gapt_train import GaptConfig
from rotelab.entropy.lm_train import LMTrainConfig

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--p-m", type=int, default=125)  # the notes' values (GPT-2 script)
    ap.add_argument("--p-a", type=int, default=75)
    ap.add_argument("--mbe-weight", type=float, default=1.0)
    ap.add_argument("--out-dir", default=str(OUT / "entropy_lm"))
    ap.add_argument("--out", default=str(OUT / "entropy_lm.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_all = time.time()
    out_dir = Path(args.out_dir)
    gate = GateConfig(p_m=args.p_m, p_a=args.p_a)
    res: dict = {"config": vars(args), "runs": {}}
    timelines = {}
    for seed in args.seeds:
        for obj in ("ce", "gapt"):
            cfg = LMTrainConfig(preset=args.preset, n_layer=args.n_layer, seed=seed,
                                gapt=GaptConfig(objective=obj, steps=args.steps, warmup_steps=40, mbe_weight=args.mbe_weight, gate=gate))
            folder = out_dir / f"{obj}-seed{seed}"
            shutil.rmtree(folder, ignore_errors=True)  # a fresh measurement (the API would resume a finished run)
            t0 = time.time()
            r = train(config=cfg, out=folder, progress=False)
            r["wall_seconds"] = round(time.time() - t0, 1)
            res["runs"][f"{obj}-seed{seed}"] = r
            st = read_parquet(folder / "steps.parquet")
            if seed == args.seeds[0]:
                timelines[obj] = [dict(zip(st, v)) for v in zip(*st.values())]
            print(obj, seed, "heldout CE", round(r["heldout_ce"], 4), "train CE", round(r["train_ce"], 4), "MBE", np.round(r["mbe_layers"], 3).tolist(),
                  "compress", round(r["share_steps_compress"], 3), "switches", [(s["step"], s["to_phase"], s["reason"]) for s in r["switches"]], f"{r['wall_seconds']}s", flush=True)
            write_json(Path(args.out), res)
    S = args.seeds
    mid = list(range(2, args.n_layer))  # hidden_states indices of the gated (middle) blocks
    R = lambda o, s: res["runs"][f"{o}-seed{s}"]  # noqa: E731
    mid_mbe = lambda o, s: float(np.mean([R(o, s)["mbe_layers"][i] for i in mid]))  # noqa: E731
    res["summary"] = {
        "heldout_ce_change_pct": seed_interval([100 * (R("gapt", s)["heldout_ce"] / R("ce", s)["heldout_ce"] - 1) for s in S]),
        "middle_mbe_change_pct": seed_interval([100 * (mid_mbe("gapt", s) / mid_mbe("ce", s) - 1) for s in S]),
        "ce.heldout_ce": seed_interval([R("ce", s)["heldout_ce"] for s in S]),
        "gapt.heldout_ce": seed_interval([R("gapt", s)["heldout_ce"] for s in S]),
        "ce.generalisation_gap": seed_interval([R("ce", s)["heldout_ce"] - R("ce", s)["train_ce"] for s in S]),
        "gapt.generalisation_gap": seed_interval([R("gapt", s)["heldout_ce"] - R("gapt", s)["train_ce"] for s in S]),
        "ce.middle_mbe": seed_interval([mid_mbe("ce", s) for s in S]),
        "gapt.middle_mbe": seed_interval([mid_mbe("gapt", s) for s in S]),
        "gapt.share_steps_compress": seed_interval([R("gapt", s)["share_steps_compress"] for s in S]),
        "paper": {"heldout_ce_change_pct": -4.8, "mbe_change_pct": -50.0},
    }
    res["seconds"] = round(time.time() - t_all, 1)
    write_json(Path(args.out), res)
    from rotelab.entropy.figures import timeline_figure

    fig = timeline_figure(timelines, title=f"preset {args.preset}, {args.n_layer} blocks, seed {S[0]}, {args.steps} steps")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "figures" / "timeline.png", dpi=110, bbox_inches="tight")  # beside the runs, not a run folder of its own
    for k, v in res["summary"].items():
        print(k, v)
    print(f"{res['seconds']:.0f}s")


if __name__ == "__main__":
    main()
