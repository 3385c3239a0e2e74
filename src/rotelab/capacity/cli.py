"""``rotelab capacity``: parameter cost of memorization (CoT transformers; robust ReLU nets)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer

from rotelab.cli_common import group, JsonOpt, OutOpt, QuietOpt, finish, open_run
from rotelab.errors import RotelabError

app = group("capacity", help="How many parameters memorization costs: transformers with/without CoT, robust ReLU nets.")


def _ints(option: str, text: str, *, low: int = 1) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated integers; got {text!r}") from None
    if not vals or min(vals) < low:
        raise RotelabError(f"{option} values must be >= {low}; got {text!r}")
    return vals


def _floats(option: str, text: str, *, low: float, high: float) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated numbers; got {text!r}") from None
    if not all(low < v < high for v in vals):
        raise RotelabError(f"{option} values must be in ({low:g}, {high:g}); got {text!r}")
    return vals


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise RotelabError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return value


@app.command()
def cot(
    out: OutOpt = None,
    sizes: Annotated[str, typer.Option(help="N ladder, comma-separated.")] = "8,16,32,64,128",
    w_max: Annotated[int, typer.Option(help="Largest transformer width searched (1 head; widths 2.. by bisection).")] = 32,
    depths: Annotated[str, typer.Option(help="Transformer depths searched, in this order.")] = "2,1",
    seeds: Annotated[str, typer.Option(help="Seeds (data and init) of the sweep.")] = "0,1",
    cond_seeds: Annotated[str, typer.Option(help="Seeds of the condition-family runs.")] = "0,1,2",
    pos: Annotated[str, typer.Option(help="Positions in the sweep: learned | none (NoPE).")] = "learned",
    precision: Annotated[str, typer.Option(help="Sweep precision: fp32 | bf16 | fp8 | int8.")] = "fp32",
    pause: Annotated[int, typer.Option(help="CoT trace length (pause tokens).")] = 2,
    length: Annotated[int, typer.Option(help="Input string length.")] = 6,
    steps: Annotated[int, typer.Option(help="Max training steps per candidate (and per condition-family run).")] = 2000,
    single_n_max: Annotated[int, typer.Option(help="Single-symbol family: gamma^1 .. gamma^n.")] = 12,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Smallest transformer memorising N random-label strings with/without CoT; the condition families."""
    from rotelab.capacity.cot import CotConfig, run_cot
    from rotelab.capacity.cot_model import PRECISIONS

    cfg = CotConfig(sizes=_ints("--sizes", sizes, low=2), w_max=_ints("--w-max", str(w_max), low=2)[0], depths=_ints("--depths", depths),
                    seeds=_ints("--seeds", seeds, low=0), cond_seeds=_ints("--cond-seeds", cond_seeds, low=0), pos=_choice("--pos", pos, ("learned", "none")),
                    precision=_choice("--precision", precision, PRECISIONS), pause=_ints("--pause", str(pause))[0],
                    length=_ints("--length", str(length))[0], steps=_ints("--steps", str(steps))[0], cond_steps=steps,
                    single_n_max=_ints("--single-n-max", str(single_n_max), low=2)[0])
    if cfg.alphabet**cfg.length < max(cfg.sizes):
        raise RotelabError(f"--length {cfg.length} gives {cfg.alphabet ** cfg.length} strings < largest --sizes {max(cfg.sizes)}")
    run = open_run(out, "capacity cot", asdict(cfg), seed=cfg.seeds[0])
    finish(run, run_cot(run, cfg, progress=not quiet), as_json=json_out, quiet=quiet)


@app.command()
def robust(
    out: OutOpt = None,
    n: Annotated[int, typer.Option("--n", help="Number of points N.")] = 32,
    d: Annotated[int, typer.Option("--d", help="Input dimension d.")] = 8,
    dataset: Annotated[str, typer.Option(help="random | frame (orthogonal frame, N <= 2d).")] = "random",
    rhos: Annotated[str, typer.Option(help="rho = mu/eps_D ladder, each in (0, 1).")] = "0.1,0.3,0.5,0.7,0.9",
    widths: Annotated[str, typer.Option(help="MLP widths searched.")] = "4,8,16,32,64",
    depths: Annotated[str, typer.Option(help="MLP hidden-layer counts searched.")] = "1,2",
    seeds: Annotated[str, typer.Option(help="Seeds (data and init).")] = "0,1",
    mode: Annotated[str, typer.Option(help="Training: ibp (certified) | pgd (adversarial).")] = "ibp",
    steps: Annotated[int, typer.Option(help="Max training steps per candidate.")] = 1500,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Smallest ReLU MLP certified to rho-robustly memorise N points, against Thm 3.1's lower bound."""
    from rotelab.capacity.robust import DATASETS, RobustConfig, run_robust
    from rotelab.capacity.robust_train import MODES

    n_, d_ = _ints("--n", str(n), low=2)[0], _ints("--d", str(d))[0]
    if _choice("--dataset", dataset, DATASETS) == "frame" and n_ > 2 * d_:
        raise RotelabError(f"--dataset frame needs --n <= 2 * --d = {2 * d_}; got --n {n_}")
    cfg = RobustConfig(n=n_, d=d_, dataset=dataset, rhos=_floats("--rhos", rhos, low=0, high=1),
                       widths=_ints("--widths", widths), depths=_ints("--depths", depths), seeds=_ints("--seeds", seeds, low=0),
                       mode=_choice("--mode", mode, MODES), steps=_ints("--steps", str(steps))[0])
    run = open_run(out, "capacity robust", asdict(cfg), seed=cfg.seeds[0])
    finish(run, run_robust(run, cfg, progress=not quiet), as_json=json_out, quiet=quiet)


@app.command()
def bounds(
    n: Annotated[int, typer.Option("--n", help="Number of points N.")],
    d: Annotated[int, typer.Option("--d", help="Input dimension d.")],
    rho: Annotated[float, typer.Option("--rho", help="rho = mu / eps_D in (0, 1).")],
    json_out: JsonOpt = False,
):
    """Thm 3.1 lower bound and the upper-bound regime for rho-robust memorization (no run folder)."""
    from rotelab.capacity.bounds import bounds_summary
    from rotelab.core.io import dumps

    s = bounds_summary(_ints("--n", str(n), low=1)[0], _ints("--d", str(d))[0], _floats("--rho", str(rho), low=0, high=1)[0])
    if json_out:
        sys.stdout.write(dumps(s) + "\n")
        return
    t = s["lower_bound_terms"]
    typer.echo(f"N={s['n']} d={s['d']} rho={s['rho']:g}")
    typer.echo(f"lower bound (Thm 3.1, up to constants): P >= {s['lower_bound']:.1f}  "
               f"[(rho^2 min(N,d)+1) d = {t['width_term']:.1f}; min(1/sqrt(1-rho^2), sqrt d) sqrt N = {t['vc_term']:.1f}]")
    upper = s["upper_bound_order"]
    typer.echo(f"upper-bound regime: {s['upper_regime']}" + (f"  (order {upper:.1f})" if upper is not None else ""))
    typer.echo(f"unverified: {s['unverified']}")
