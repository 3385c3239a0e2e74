"""The chain-of-thought capacity experiment behind ``rotelab capacity cot``.

1. ``capacity_sweep``: for each N, the smallest transformer (bisection over the width at each
   depth) that memorises N random-label strings, with and without a CoT trace, over several
   seeds; fit of log P*(N) = a + b log N. Yu, Gao, Zhang (2025) prove P = Theta-bar(N) in every
   case: b ~ 1.
2. The condition-separating families, checked by :func:`check_conditions` and trained over
   several seeds: single-symbol inputs with threshold or parity labels (no-CoT NoPE must fail;
   CoT can succeed, for parity only up to some n, fewer as the precision drops) and prefix
   conflicts (CoT must fail; no-CoT succeeds).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any, Callable

from rotelab.capacity.cot.config import ARMS, CotConfig
from rotelab.capacity.cot.data import ReasoningSet, check_conditions, pause_trace, prefix_conflicts, random_labels, single_symbol
from rotelab.capacity.cot.model import TinyConfig, TinyTransformer, TrainConfig, n_params, train_memorize
from rotelab.capacity.search import loglog_slope, width_search
from rotelab.core.console import progress as progress_bar
from rotelab.core.io import read_json
from rotelab.core.runs import RunFolder


def arch_factory(data: ReasoningSet, cfg: CotConfig, *, cot: bool, pos: str) -> Callable[[int, int], TinyConfig]:
    """(width, depth) -> the sweep's transformer for ``data`` (max_len = longest sequence, so P counts no unused rows)."""
    T = max(len(s) for s, _ in data.sequences(cot=cot))
    return lambda w, L: TinyConfig(vocab=data.vocab.size, width=w, depth=L, pos=pos, max_len=T, precision=cfg.precision)


def capacity_sweep(dataset_factory: Callable[[int, int], ReasoningSet], arch: Callable[[int, int], TinyConfig], sizes: tuple[int, ...],
                   seeds: tuple[int, ...], *, cot: bool, train: TrainConfig, depths: tuple[int, ...] = (2, 1), w_min: int = 2, w_max: int = 32,
                   on_point: Callable[[int, int, dict], None] | None = None,
                   cached: Callable[[int, int], dict | None] | None = None) -> dict[str, Any]:
    """P*(N): the smallest parameter count over widths ``w_min .. w_max`` and ``depths`` of
    ``arch(width, depth)`` memorising 100% of ``dataset_factory(N, seed)``, per seed.

    Search (:func:`~rotelab.capacity.search.width_search`): per depth, gallop up from a guess then
    bisect over the width; later depths only try widths with fewer parameters than the best so
    far. Along the N ladder P*(N) is taken non-decreasing: at each depth the width below the
    previous N's smallest success is assumed to fail, and the first guess scales that width by
    sqrt(N / N_prev) (P ~ width^2, P ~ N).

    ``cached(N, seed)`` may return a finished point (resume); ``on_point`` sees each new one.
    Returns ``points`` (N, seed, p_star or None, width, depth, trials, cpu_seconds), the log-log
    ``fit`` over found points and ``fit_tail`` without the smallest N (sensitivity to the fixed
    embedding cost that dominates tiny N).
    """
    size: dict[tuple[int, int], int] = {}

    def params_of(w: int, depth: int) -> int:
        if (w, depth) not in size:
            size[w, depth] = n_params(TinyTransformer(arch(w, depth)))
        return size[w, depth]

    points = []
    for seed in seeds:
        prev: dict | None = None
        for n in sizes:
            point = cached(n, seed) if cached else None
            if point is None:
                c0 = time.process_time()
                data = dataset_factory(n, seed)

                def trial(w: int, depth: int) -> dict:
                    r = train_memorize(data, arch(w, depth), cot=cot, seed=seed, cfg=train)  # noqa: B023 (run now)
                    return {k: r[k] for k in ("params", "memorized", "steps", "stop")} | {"success": r["memorized"] == 1.0}

                known, guess = {}, {}
                if prev is not None:
                    for d, w in prev["per_depth"].items():
                        if w is not None:
                            known[int(d)] = w - 1
                            guess[int(d)] = math.ceil(w * math.sqrt(n / prev["n"]))
                res = width_search(params_of, trial, depths=depths, w_min=w_min, w_max=w_max, known_fail=known, guess=guess)
                point = {"n": n, "seed": seed, "p_star": res["p_star"],
                         "width": None if res["best"] is None else res["best"][0], "depth": None if res["best"] is None else res["best"][1],
                         "per_depth": res["per_depth"], "trials": res["trials"], "cpu_seconds": time.process_time() - c0}
                if res["best"] is None:
                    point["p_star_reason"] = f"no width {w_min}..{w_max} at depths {list(depths)} memorised all {n}"
                if on_point:
                    on_point(n, seed, point)
            points.append(point)
            if point["p_star"] is not None:
                prev = point
    found = [p for p in points if p["p_star"] is not None]
    tail = [p for p in found if p["n"] > min(sizes)]
    return {"points": points, "fit": loglog_slope([p["n"] for p in found], [p["p_star"] for p in found]),
            "fit_tail": loglog_slope([p["n"] for p in tail], [p["p_star"] for p in tail])}


def _sweep_arm(run: RunFolder, cfg: CotConfig, arm: str, tick: Callable[[], None]) -> dict:
    cot = arm == "cot"

    def make(n: int, seed: int) -> ReasoningSet:
        d = random_labels(n, length=cfg.length, alphabet=cfg.alphabet, n_labels=cfg.n_labels, seed=seed)
        return pause_trace(d, cfg.pause) if cot else d

    def name(n: int, seed: int) -> str:
        return f"cot/sweep_{arm}_n{n}_s{seed}.json"

    def cached(n: int, seed: int) -> dict | None:
        if run.is_done(name(n, seed)):
            tick()
            return read_json(run.file(name(n, seed)))
        return None

    def save(n: int, seed: int, point: dict) -> None:
        run.step(name(n, seed), lambda: run.write_json(name(n, seed), point))
        tick()

    return capacity_sweep(make, arch_factory(make(cfg.sizes[0], 0), cfg, cot=cot, pos=cfg.pos), cfg.sizes, cfg.seeds, cot=cot,
                          train=TrainConfig(steps=cfg.steps, lr=cfg.lr, patience=cfg.patience), depths=cfg.depths,
                          w_min=cfg.w_min, w_max=cfg.w_max, on_point=save, cached=cached)


# What the conditions predict for each separating-family run: "fail" = at most the checker's
# bound for that arm (never 100%); "succeed" = 100% reachable (the condition holds or positions
# break the no-CoT symmetry); "bounded" = CoT separates gamma^n only up to some n (reported).
PREDICTIONS = {
    ("single_threshold", "no_cot", "none"): "fail", ("single_threshold", "cot", "none"): "succeed",
    ("single_threshold", "no_cot", "learned"): "succeed",
    ("single_parity", "no_cot", "none"): "fail", ("single_parity", "cot", "none"): "bounded",
    ("single_parity", "no_cot", "learned"): "succeed",
    ("prefix", "no_cot", "none"): "succeed", ("prefix", "cot", "none"): "fail",
}


def _family_data(cfg: CotConfig, family: str, seed: int) -> ReasoningSet:
    if family == "prefix":
        return prefix_conflicts(cfg.prefix_pairs, alphabet=cfg.alphabet, seed=seed)
    return single_symbol(cfg.single_n_max, labels=family.removeprefix("single_"))


def _condition_runs(cfg: CotConfig) -> list[tuple[str, str, str, str, str]]:
    """(family, arm, pos, precision, group key) for every condition-family configuration;
    each is trained once per ``cfg.cond_seeds`` (prefix-conflict data also change with the seed)."""
    runs = []
    for family in ("single_threshold", "single_parity"):
        runs += [(family, arm, pos, "fp32") for arm, pos in (("no_cot", "none"), ("cot", "none"), ("no_cot", "learned"))]
    runs += [("single_parity", "cot", "none", prec) for prec in cfg.precisions if prec != "fp32"]
    runs += [("prefix", arm, "none", "fp32") for arm in ARMS]
    return [(f, a, pos, prec, f"{f}_{a}_{pos}_{prec}") for f, a, pos, prec in runs]


def _largest_prefix_memorized(per_example: list[bool]) -> int:
    """Largest n such that gamma^1 .. gamma^n are all memorised (0 if gamma^1 is not)."""
    k = 0
    while k < len(per_example) and per_example[k]:
        k += 1
    return k


def _verdict(prediction: str, accs: list[float], bound: float | None) -> str:
    if prediction == "fail":
        ok = all(a < 1.0 for a in accs) and (bound is None or all(a <= bound + 1e-6 for a in accs))
        return "as predicted (never above the bound)" if ok else "CONTRADICTS the condition"
    if prediction == "succeed":
        k = sum(a == 1.0 for a in accs)
        return f"as predicted ({k}/{len(accs)} seeds at 100%)" if k else f"not reached in training (0/{len(accs)} seeds; 'can', not 'must')"
    return "bounded n: see largest_n"


def run_cot(run: RunFolder, cfg: CotConfig = CotConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole CoT experiment into ``run``; returns the summary, also
    written to ``cot/summary.json``."""
    cond = _condition_runs(cfg) if cfg.conditions else []
    total = len(cfg.arms) * len(cfg.sizes) * len(cfg.seeds) + len(cond) * len(cfg.cond_seeds)
    c0 = time.process_time()
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task("capacity cot", total=total)

        def tick() -> None:
            bar.advance(task)

        sweeps = {arm: _sweep_arm(run, cfg, arm, tick) for arm in cfg.arms}
        conditions: dict[str, Any] = {}
        train = TrainConfig(steps=cfg.cond_steps, lr=cfg.lr, patience=cfg.patience)
        for family, arm, pos, prec, key in cond:
            per_seed = []
            for seed in cfg.cond_seeds:
                data = _family_data(cfg, family, seed)
                cot = arm == "cot"
                T = max(len(q) for q, _ in data.sequences(cot=cot))
                arch = TinyConfig(vocab=data.vocab.size, width=cfg.cond_width, depth=cfg.cond_depth, heads=cfg.cond_heads, pos=pos,
                                  max_len=T, precision=prec)
                fname = f"cot/cond_{key}_s{seed}.json"
                run.step(fname, lambda: run.write_json(fname, train_memorize(data, arch, cot=cot, seed=seed, cfg=train)))  # noqa: B023 (run now)
                rec = read_json(run.file(fname))
                per_seed.append({"seed": seed, "memorized": rec["memorized"], "steps": rec["steps"], "stop": rec.get("stop"),
                                 "params": rec["params"], "per_example": rec["per_example"],
                                 "largest_n": _largest_prefix_memorized(rec["per_example"]) if family.startswith("single") else None})
                tick()
            check = check_conditions(data)  # the bound does not depend on the seed (same structure)
            bound = check.get(arm, {}).get("max_accuracy") if pos == "none" else None
            accs = [r["memorized"] for r in per_seed]
            pred = PREDICTIONS[family, arm, pos]
            conditions[key] = {"family": family, "arm": arm, "pos": pos, "precision": prec, "n": len(data),
                               "prediction": pred, "bound": bound, "accuracy_mean": sum(accs) / len(accs), "accuracy": accs,
                               "largest_n": [r["largest_n"] for r in per_seed] if family.startswith("single") else None,
                               "verdict": _verdict(pred, accs, bound), "params": per_seed[0]["params"], "seeds": per_seed}
    checks = {"single_symbol_threshold": check_conditions(single_symbol(cfg.single_n_max, labels="threshold")),
              "single_symbol_parity": check_conditions(single_symbol(cfg.single_n_max, labels="parity")),
              "prefix_conflicts": check_conditions(prefix_conflicts(cfg.prefix_pairs, alphabet=cfg.alphabet))}
    summary = {
        "config": asdict(cfg),
        "slopes": {arm: sweeps[arm]["fit"] for arm in cfg.arms},
        "slopes_tail": {arm: sweeps[arm]["fit_tail"] for arm in cfg.arms},
        "p_star": {arm: [{k: p.get(k) for k in ("n", "seed", "p_star", "width", "depth", "p_star_reason", "cpu_seconds")}
                         | {"trials": len(p["trials"])} for p in sweeps[arm]["points"]] for arm in cfg.arms},
        "checks": checks,
        "conditions": conditions,
        "cpu_seconds_this_call": time.process_time() - c0,
    }
    run.write_json("cot/summary.json", summary)
    from rotelab.capacity.cot.figures import cot_figures

    cot_figures(run, summary)
    return summary
