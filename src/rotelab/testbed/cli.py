"""``rotelab testbed build|unlearn``: parse, call :mod:`rotelab.testbed.api` once, print.

The unlearning methods come from their registry (:data:`rotelab.testbed.methods.METHODS`, which
imports no torch); testbed presets from :data:`rotelab.testbed.presets.TESTBEDS`, looked up when
the command runs (their builders train models, so their modules load torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import RunOpts, SeedOpt, command, emit_run, group
from rotelab.testbed.methods import METHODS, Method

app = group("testbed", help="Small models whose memorization is known, and unlearning with ground truth.")


@command(app, "build")
def build(
    run: RunOpts,
    preset: Annotated[str, typer.Option("--preset", help="Testbed preset, e.g. tiny (tests, < 1 min) or small (1.3M parameters, < 10 min; the demo); an unknown name lists every registered one.")] = "small",
    seed: SeedOpt = 0,
):
    """Build a testbed: splits with copy counts and canaries, tokenizer, model, reference model, evaluation."""
    from rotelab.testbed import api

    out = run.out_dir("testbed build")
    emit_run(api.build(preset, out=out, seed=seed, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "unlearn")
def unlearn(
    testbed: Annotated[Path, typer.Option("--testbed", help="A testbed folder (rotelab testbed build), or its model/.")],
    run: RunOpts,
    method: Annotated[str, typer.Option("--method", help=f"Unlearning method: {' | '.join(METHODS.names())}.")] = "npo",
    lr: Annotated[Optional[float], typer.Option("--lr", help=f"Learning rate; default: the method's ({', '.join(f'{n} {METHODS[n].obj.lr:g}' for n in METHODS.names() if METHODS[n].obj.run is Method.run)}).")] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Step cap.")] = 1000,
    beta: Annotated[float, typer.Option("--beta", help="beta of NPO, SimNPO and IdkPO.")] = 0.1,
    retain_weight: Annotated[float, typer.Option("--retain-weight", help="alpha: weight of the retain term (GradDiff, NPO, SimNPO, IdkPO, RMU).")] = 1.0,
    layer: Annotated[int, typer.Option("--layer", help="RMU: the block whose output is steered (negative counts from the end); the MLPs of it and the 2 blocks below are updated.")] = -1,
    steering_coeff: Annotated[float, typer.Option("--steering-coeff", help="RMU: c, the norm of the random target activation.")] = 5.0,
    verify_every: Annotated[int, typer.Option("--verify-every", help="Log verification figures (loss-attack and Min-K% AUC with 95% intervals, forget/retain/holdout loss) every N steps into unlearn.json's verify_log and a figure; 0: off.")] = 0,
    seed: SeedOpt = 0,
):
    """Unlearn the testbed's forget set; checkpoints at forget loss = 1.0x and 1.5x the stop-calibration loss (never-trained facts disjoint from holdout)."""
    from rotelab.testbed import api

    out = run.out_dir("testbed unlearn")
    result = api.unlearn(testbed, method=method, lr=lr, max_steps=max_steps, beta=beta, retain_weight=retain_weight, layer=layer, steering_coeff=steering_coeff,
                         verify_every=verify_every, seed=seed, out=out, overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)
