"""The robust-memorization experiment behind ``rotelab capacity robust``.

At fixed (N, d), for each rho on a ladder: the smallest ReLU MLP (width x depth grid) whose
every mu-ball (mu = rho eps_D) IBP certifies after training, per seed; for every trained net
the certified share, the PGD-attacked share and the gap 1 - certified - attacked (balls neither
proved nor broken). Overlaid: Thm 3.1's lower bound, scaled by one constant (Kim, Moon, Yun 2025).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from rotelab.capacity.robust.bounds import lower_bound_terms
from rotelab.capacity.robust.config import RobustConfig
from rotelab.capacity.robust.data import orthogonal_frame, separated_points, separation
from rotelab.capacity.robust.train import RobustTrainConfig, train_robust
from rotelab.capacity.robust.verify import certify_ibp, mlp, n_params, pgd_l2
from rotelab.capacity.search import smallest_success
from rotelab.core.console import progress as progress_bar
from rotelab.core.io import read_json
from rotelab.core.runs import RunFolder
from rotelab.core.stats import clopper_pearson


def make_data(cfg: RobustConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if cfg.dataset == "frame":
        return orthogonal_frame(cfg.n, cfg.d)
    return separated_points(cfg.n, cfg.d, seed=seed)


def evaluate(model: torch.nn.Sequential, X: torch.Tensor, y: torch.Tensor, mu: float, *, pgd_steps: int, restarts: int, seed: int) -> dict[str, Any]:
    """Certified share (IBP), PGD-attacked share, gap, and the soundness check: no ball is both."""
    cert = certify_ibp(model, X, y, mu)
    attacked, _ = pgd_l2(model, X, y, mu, steps=pgd_steps, restarts=restarts, seed=seed)
    n = len(y)
    both = int((cert & attacked).sum())
    assert both == 0, f"IBP certified {both} balls that PGD broke: the verifier is unsound"
    return {"certified": float(cert.float().mean()), "attacked": float(attacked.float().mean()),
            "gap": 1.0 - float(cert.float().mean()) - float(attacked.float().mean()),
            "certified_ci": list(clopper_pearson(int(cert.sum()), n)), "attacked_ci": list(clopper_pearson(int(attacked.sum()), n)),
            "clean_accuracy": float((model(X).argmax(1) == y).float().mean())}


def rho_point(cfg: RobustConfig, rho: float, seed: int) -> dict[str, Any]:
    """P*(rho) for one seed: scan widths x depths in increasing P until 100% certified."""
    c0 = time.process_time()
    X_np, y_np = make_data(cfg, seed)
    X, y = torch.tensor(X_np, dtype=torch.float32), torch.tensor(y_np)
    C = int(y_np.max() + 1)
    mu = rho * separation(X_np, y_np)
    shapes = [(w, L) for L in cfg.depths for w in cfg.widths]
    params = [n_params(mlp(cfg.d, w, L, C)) for w, L in shapes]
    tcfg = RobustTrainConfig(mode=cfg.mode, steps=cfg.steps, lr=cfg.lr)

    def trial(i: int) -> dict:
        w, L = shapes[i]
        model, rec = train_robust(X, y, mu, width=w, depth=L, n_classes=C, seed=seed, cfg=tcfg)
        ev = evaluate(model, X, y, mu, pgd_steps=cfg.pgd_steps, restarts=cfg.pgd_restarts, seed=seed)
        return {"width": w, "depth": L, **rec, **ev, "success": ev["certified"] == 1.0}

    best, trials = smallest_success(params, trial)
    return {"rho": rho, "seed": seed, "mu": mu, "p_star": None if best is None else params[best],
            "p_star_reason": None if best is not None else f"no net up to {max(params)} parameters certified all {cfg.n} balls",
            "trials": trials, "cpu_seconds": time.process_time() - c0}


def fit_constant(rhos: list[float], p_star: list[float], cfg: RobustConfig) -> float:
    """c minimising sum (log P* - log(c LB(rho)))^2: the geometric mean of P*/LB."""
    lb = np.array([lower_bound_terms(cfg.n, cfg.d, r)["total"] for r in rhos])
    return float(np.exp(np.mean(np.log(np.asarray(p_star, float) / lb))))


def run_robust(run: RunFolder, cfg: RobustConfig = RobustConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the rho sweep into ``run``; summary also in ``robust/summary.json``."""
    points = []
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task("capacity robust", total=len(cfg.rhos) * len(cfg.seeds))
        for seed in cfg.seeds:
            for rho in cfg.rhos:
                name = f"robust/rho{rho:g}_s{seed}.json"
                run.step(name, lambda: run.write_json(name, rho_point(cfg, rho, seed)))
                points.append(read_json(run.file(name)))
                bar.advance(task)
    found = [p for p in points if p["p_star"] is not None]
    c = fit_constant([p["rho"] for p in found], [p["p_star"] for p in found], cfg) if found else None
    curve = [{"rho": r, **lower_bound_terms(cfg.n, cfg.d, r)} for r in np.linspace(0.02, 0.98, 49).tolist()]
    per_rho = []
    for rho in cfg.rhos:
        ps = [p for p in points if p["rho"] == rho]
        vals = [p["p_star"] for p in ps if p["p_star"] is not None]
        best_trials = [p["trials"][-1] for p in ps]
        per_rho.append({"rho": rho, "p_star_median": float(np.median(vals)) if vals else None,
                        "p_star_min": min(vals) if vals else None, "p_star_max": max(vals) if vals else None,
                        "seeds_found": len(vals), "seeds": len(ps),
                        "certified_last": float(np.mean([t["certified"] for t in best_trials])),
                        "attacked_last": float(np.mean([t["attacked"] for t in best_trials])),
                        "lower_bound": lower_bound_terms(cfg.n, cfg.d, rho)["total"]})
    summary = {"config": asdict(cfg), "per_rho": per_rho, "lb_constant": c,
               "points": [{k: p[k] for k in ("rho", "seed", "mu", "p_star", "p_star_reason")} for p in points],
               "trials": [{"rho": p["rho"], "seed": p["seed"], **{k: t[k] for k in ("width", "depth", "params", "certified", "attacked", "gap", "clean_accuracy", "steps")}}
                          for p in points for t in p["trials"]],
               "lb_curve": curve}
    run.write_json("robust/summary.json", summary)
    from rotelab.capacity.robust.figures import robust_figures

    robust_figures(run, summary)
    return {k: v for k, v in summary.items() if k not in ("lb_curve", "trials")}
