"""``rotelab capacity``: parameter cost of memorization -- thin commands over :mod:`rotelab.capacity.api`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from rotelab.capacity.cot.config import CotConfig
from rotelab.capacity.robust.config import RobustConfig
from rotelab.cli_common import OutputOpts, RunOpts, command, emit, emit_run, group
from rotelab.errors import RotelabError

app = group("capacity", help="How many parameters memorization costs: transformers with/without CoT, robust ReLU nets.")

_COT, _ROBUST = CotConfig(), RobustConfig()


def _ints(option: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated integers; got {text!r}") from None


def _floats(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated numbers; got {text!r}") from None


def _csv(values: tuple) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


@command(app, "cot")
def cot(
    run: RunOpts,
    sizes: Annotated[str, typer.Option(help="N ladder, comma-separated.")] = _csv(_COT.sizes),
    w_max: Annotated[int, typer.Option(help="Largest transformer width searched (1 head; widths 2.. by bisection).")] = _COT.w_max,
    depths: Annotated[str, typer.Option(help="Transformer depths searched, in this order.")] = _csv(_COT.depths),
    seeds: Annotated[str, typer.Option(help="Seeds (data and init) of the sweep.")] = _csv(_COT.seeds),
    cond_seeds: Annotated[str, typer.Option(help="Seeds of the condition-family runs.")] = _csv(_COT.cond_seeds),
    pos: Annotated[str, typer.Option(help="Positions in the sweep: learned | none (NoPE).")] = _COT.pos,
    precision: Annotated[str, typer.Option(help="Sweep precision: fp32 | bf16 | fp8 | int8.")] = _COT.precision,
    pause: Annotated[int, typer.Option(help="CoT trace length (pause tokens).")] = _COT.pause,
    length: Annotated[int, typer.Option(help="Input string length.")] = _COT.length,
    steps: Annotated[int, typer.Option(help="Max training steps per candidate (and per condition-family run).")] = _COT.steps,
    single_n_max: Annotated[int, typer.Option(help="Single-symbol family: gamma^1 .. gamma^n.")] = _COT.single_n_max,
):
    """Smallest transformer memorising N random-label strings with/without CoT; the condition families."""
    from rotelab.capacity import api

    cfg = replace(_COT, sizes=_ints("--sizes", sizes), w_max=w_max, depths=_ints("--depths", depths), seeds=_ints("--seeds", seeds),
                  cond_seeds=_ints("--cond-seeds", cond_seeds), pos=pos, precision=precision, pause=pause, length=length,
                  steps=steps, cond_steps=steps, single_n_max=single_n_max)
    out = run.out_dir("capacity cot")
    emit_run(api.cot(out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "robust")
def robust(
    run: RunOpts,
    n: Annotated[int, typer.Option("--n", help="Number of points N.")] = _ROBUST.n,
    d: Annotated[int, typer.Option("--d", help="Input dimension d.")] = _ROBUST.d,
    dataset: Annotated[str, typer.Option(help="random | frame (orthogonal frame, N <= 2d).")] = _ROBUST.dataset,
    rhos: Annotated[str, typer.Option(help="rho = mu/eps_D ladder, each in (0, 1).")] = _csv(_ROBUST.rhos),
    widths: Annotated[str, typer.Option(help="MLP widths searched.")] = _csv(_ROBUST.widths),
    depths: Annotated[str, typer.Option(help="MLP hidden-layer counts searched.")] = _csv(_ROBUST.depths),
    seeds: Annotated[str, typer.Option(help="Seeds (data and init).")] = _csv(_ROBUST.seeds),
    mode: Annotated[str, typer.Option(help="Training: ibp (certified) | pgd (adversarial).")] = _ROBUST.mode,
    steps: Annotated[int, typer.Option(help="Max training steps per candidate.")] = _ROBUST.steps,
):
    """Smallest ReLU MLP certified to rho-robustly memorise N points, against Thm 3.1's lower bound."""
    from rotelab.capacity import api

    cfg = replace(_ROBUST, n=n, d=d, dataset=dataset, rhos=_floats("--rhos", rhos), widths=_ints("--widths", widths),
                  depths=_ints("--depths", depths), seeds=_ints("--seeds", seeds), mode=mode, steps=steps)
    out = run.out_dir("capacity robust")
    emit_run(api.robust(out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "bounds")
def bounds(
    n: Annotated[int, typer.Option("--n", help="Number of points N.")],
    d: Annotated[int, typer.Option("--d", help="Input dimension d.")],
    rho: Annotated[float, typer.Option("--rho", help="rho = mu / eps_D in (0, 1).")],
    output: OutputOpts,
):
    """Thm 3.1 lower bound and the upper-bound regime for rho-robust memorization (no run folder)."""
    from rotelab.capacity import api

    s = api.bounds(n, d, rho)
    if output.json_out:
        emit(s, output)
        return
    t = s["lower_bound_terms"]
    typer.echo(f"N={s['n']} d={s['d']} rho={s['rho']:g}")
    typer.echo(f"lower bound (Thm 3.1, up to constants): P >= {s['lower_bound']:.1f}  "
               f"[(rho^2 min(N,d)+1) d = {t['width_term']:.1f}; min(1/sqrt(1-rho^2), sqrt d) sqrt N = {t['vc_term']:.1f}]")
    upper = s["upper_bound_order"]
    typer.echo(f"upper-bound regime: {s['upper_regime']}" + (f"  (order {upper:.1f})" if upper is not None else ""))
    typer.echo(f"unverified: {s['unverified']}")
