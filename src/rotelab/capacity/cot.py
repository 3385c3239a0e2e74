"""The chain-of-thought capacity experiment behind ``rotelab capacity cot``.

1. ``capacity_sweep``: for each N, the smallest transformer (width x depth grid) that memorises N
   random-label strings, with and without a CoT trace, over several seeds; fit of
   log P*(N) = a + b log N. Yu, Gao, Zhang (2025) prove P = Theta-bar(N) in every case: b ~ 1.
2. The condition-separating families, checked by :func:`check_conditions` and trained:
   single-symbol inputs (no-CoT NoPE must fail; CoT can succeed for bounded n, fewer as the
   precision drops) and prefix conflicts (CoT must fail; no-CoT succeeds).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable


from rotelab.capacity.cot_data import ReasoningSet, check_conditions, pause_trace, prefix_conflicts, random_labels, single_symbol
from rotelab.capacity.cot_model import TinyConfig, TinyTransformer, TrainConfig, n_params, train_memorize
from rotelab.capacity.search import loglog_slope, smallest_success, start_position
from rotelab.core.runs import RunFolder, read_json

ARMS = ("no_cot", "cot")


@dataclass(frozen=True)
class CotConfig:
    length: int = 6  # input symbols per string
    alphabet: int = 4
    n_labels: int = 2
    pause: int = 2  # CoT trace = this many PAUSE tokens
    pos: str = "learned"  # positions in the sweep; the condition runs use NoPE (pos="none")
    precision: str = "fp32"
    sizes: tuple[int, ...] = (16, 32, 64, 128)
    widths: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16)
    depths: tuple[int, ...] = (1, 2)
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 2000
    lr: float = 1e-2
    single_n_max: int = 12
    prefix_pairs: int = 8
    cond_width: int = 8
    cond_depth: int = 1
    cond_heads: int = 2
    precisions: tuple[str, ...] = ("fp32", "bf16", "fp8", "int8")
    arms: tuple[str, ...] = ARMS  # sweep arms to run
    conditions: bool = True  # train the condition-separating families


def candidates(data: ReasoningSet, cfg: CotConfig, *, cot: bool, pos: str) -> list[TinyConfig]:
    T = max(len(s) for s, _ in data.sequences(cot=cot))
    return [TinyConfig(vocab=data.vocab.size, width=w, depth=L, pos=pos, max_len=T, precision=cfg.precision) for L in cfg.depths for w in cfg.widths]


def _arch_params(archs: list[TinyConfig]) -> list[int]:
    return [n_params(TinyTransformer(a)) for a in archs]


def capacity_sweep(dataset_factory: Callable[[int, int], ReasoningSet], archs: list[TinyConfig], sizes: tuple[int, ...], seeds: tuple[int, ...],
                   *, cot: bool, train: TrainConfig, on_point: Callable[[int, int, dict], None] | None = None,
                   cached: Callable[[int, int], dict | None] | None = None) -> dict[str, Any]:
    """P*(N): the smallest parameter count among ``archs`` memorising 100% of
    ``dataset_factory(N, seed)``, per seed, scanning upward from the previous N's P*.

    ``cached(N, seed)`` may return a finished point (resume); ``on_point`` sees each new one.
    Returns ``points`` (N, seed, p_star or None, trials) and the log-log ``fit`` over found points.
    """
    params = _arch_params(archs)
    points = []
    for seed in seeds:
        prev = None
        for n in sizes:
            point = cached(n, seed) if cached else None
            if point is None:
                c0 = time.process_time()
                data = dataset_factory(n, seed)

                def trial(i: int) -> dict:
                    r = train_memorize(data, archs[i], cot=cot, seed=seed, cfg=train)
                    r.pop("per_example")
                    return {**r, "success": r["memorized"] == 1.0}

                best, trials = smallest_success(params, trial, start=start_position(params, prev))
                point = {"n": n, "seed": seed, "p_star": None if best is None else params[best],
                         "arch": None if best is None else asdict(archs[best]), "trials": trials}
                point["cpu_seconds"] = time.process_time() - c0
                if best is None:
                    point["p_star_reason"] = f"no candidate up to {max(params)} parameters memorised all {n}"
                if on_point:
                    on_point(n, seed, point)
            points.append(point)
            prev = point["p_star"] if point["p_star"] is not None else prev
    found = [p for p in points if p["p_star"] is not None]
    return {"points": points, "fit": loglog_slope([p["n"] for p in found], [p["p_star"] for p in found])}


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

    return capacity_sweep(make, candidates(make(cfg.sizes[0], 0), cfg, cot=cot, pos=cfg.pos), cfg.sizes, cfg.seeds, cot=cot,
                          train=TrainConfig(steps=cfg.steps, lr=cfg.lr), on_point=save, cached=cached)


def _condition_runs(cfg: CotConfig) -> list[tuple[str, ReasoningSet, bool, str, str]]:
    """(key, dataset, cot, pos, precision) for every condition-family training run."""
    single = single_symbol(cfg.single_n_max)
    prefix = prefix_conflicts(cfg.prefix_pairs, alphabet=cfg.alphabet)
    runs = []
    for prec in cfg.precisions:
        runs += [(f"single_{arm}_{pos}_{prec}", single, arm == "cot", pos, prec)
                 for arm, pos in (("no_cot", "none"), ("cot", "none"), ("no_cot", "learned"))]
    runs += [(f"prefix_{arm}_none_fp32", prefix, arm == "cot", "none", "fp32") for arm in ARMS]
    return runs


def _largest_prefix_memorized(per_example: list[bool]) -> int:
    """Largest n such that gamma^1 .. gamma^n are all memorised (0 if gamma^1 is not)."""
    k = 0
    while k < len(per_example) and per_example[k]:
        k += 1
    return k


def run_cot(run: RunFolder, cfg: CotConfig = CotConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole CoT experiment into ``run``; returns the summary, also
    written to ``cot/summary.json``."""
    from rich.progress import Progress

    cond = _condition_runs(cfg) if cfg.conditions else []
    total = len(cfg.arms) * len(cfg.sizes) * len(cfg.seeds) + len(cond)
    bar = Progress(transient=True) if progress else nullcontext()
    with bar:
        task = bar.add_task("capacity cot", total=total) if progress else None

        def tick() -> None:
            if progress:
                bar.advance(task)

        sweeps = {arm: _sweep_arm(run, cfg, arm, tick) for arm in cfg.arms}
        conditions: dict[str, Any] = {}
        for key, data, cot, pos, prec in cond:
            fname = f"cot/cond_{key}.json"
            arch = replace(candidates(data, cfg, cot=cot, pos=pos)[0], width=cfg.cond_width, depth=cfg.cond_depth, heads=cfg.cond_heads, precision=prec)
            run.step(fname, lambda: run.write_json(fname, train_memorize(data, arch, cot=cot, seed=cfg.seeds[0], cfg=TrainConfig(steps=cfg.steps, lr=cfg.lr))))  # noqa: B023 (run now)
            rec = read_json(run.file(fname))
            rec["largest_n"] = _largest_prefix_memorized(rec["per_example"]) if key.startswith("single") else None
            conditions[key] = {k: rec[k] for k in ("memorized", "params", "steps", "largest_n", "per_example")}
            tick()
    checks = {"single_symbol": check_conditions(single_symbol(cfg.single_n_max)),
              "prefix_conflicts": check_conditions(prefix_conflicts(cfg.prefix_pairs, alphabet=cfg.alphabet))}
    summary = {
        "config": asdict(cfg),
        "slopes": {arm: sweeps[arm]["fit"] for arm in cfg.arms},
        "p_star": {arm: [{k: p.get(k) for k in ("n", "seed", "p_star", "p_star_reason", "cpu_seconds")} for p in sweeps[arm]["points"]] for arm in cfg.arms},
        "checks": checks,
        "conditions": conditions,
    }
    run.write_json("cot/summary.json", summary)
    from rotelab.capacity.figures import cot_figures

    cot_figures(run, summary)
    return summary

