"""``rotelab testbed build|unlearn``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli_common import group, JsonOpt, OutOpt, QuietOpt, SeedOpt, finish, open_run
from rotelab.core.io import read_json

app = group("testbed", help="Small models whose memorization is known, and unlearning with ground truth.")


@app.command()
def build(
    preset: Annotated[str, typer.Option(help="tiny (tests, < 1 min) | small (1.3M parameters, < 10 min) | books (book excerpts at 0/1/4/16/64 copies; books-long: one 8k-token excerpt).")] = "small",
    seed: SeedOpt = 0,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Build a testbed: splits with copy counts and canaries, tokenizer, model, reference model, evaluation."""
    if preset.startswith("books"):
        from rotelab.extraction.books_testbed import build_books_testbed, get_spec

        spec = get_spec(preset)  # one-line error before a run folder exists
        run = open_run(out, "testbed build", {"preset": preset}, seed=seed)
        finish(run, build_books_testbed(run.path, seed=seed, progress=not quiet, spec=spec, run=run), as_json=json_out, quiet=quiet)
        return
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    p = get_preset(preset)
    run = open_run(out, "testbed build", {"preset": preset}, seed=seed)
    result = build_testbed(p, run, seed=seed, progress=not quiet)
    finish(run, _headline(result), as_json=json_out, quiet=quiet)


@app.command()
def unlearn(
    testbed: Annotated[Path, typer.Option("--testbed", help="A testbed folder (rotelab testbed build).")],
    method: Annotated[str, typer.Option(help="ga | graddiff | npo | retrain.")] = "npo",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-4,
    max_steps: Annotated[int, typer.Option(help="Step cap.")] = 1000,
    beta: Annotated[float, typer.Option(help="NPO beta.")] = 0.1,
    seed: SeedOpt = 0,
    out: OutOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Unlearn the testbed's forget set; checkpoints at forget loss = 1.0x and 1.5x the holdout loss."""
    from rotelab.testbed.unlearn import UnlearnConfig, unlearn as run_unlearn, validate

    cfg = UnlearnConfig(method=method, lr=lr, max_steps=max_steps, beta=beta, seed=seed)
    validate(testbed, cfg)
    run = open_run(out, "testbed unlearn", {"testbed": testbed, "method": method, "lr": lr, "max_steps": max_steps, "beta": beta}, seed=seed)
    result = run.step("unlearn", lambda: run_unlearn(testbed, cfg, run, progress=not quiet), load=lambda: read_json(run.file("unlearn.json")))
    summary = {k: v for k, v in result.items() if k not in ("log", "training")}
    finish(run, summary, as_json=json_out, quiet=quiet)


def _headline(ev: dict) -> dict:
    return {
        "loss_auc_books_seen_ge4": ev["loss_auc_books_seen_ge4"]["auc"],
        "loss_auc_books_seen_once": ev["loss_auc_books_seen_once"]["auc"],
        "loss_auc_facts": ev["loss_auc_facts"]["auc"],
        "extraction_rate_by_copies": {k: v["rate"] for k, v in ev["extraction_books_by_copies"].items()},
        "extraction_rate_seen_ge20": ev["extraction_books_seen_ge20"]["rate"],
        "canary_secret_extraction_by_copies": {k: v["rate"] for k, v in ev["canary_secret_extraction_by_copies"].items()},
    }
