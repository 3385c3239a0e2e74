"""``rotelab extract books-experiment``: build (or reuse) a books testbed, then run the books experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rotelab.cli_common import JsonOpt, OutOpt, QuietOpt, SeedOpt, finish, open_run


def headline(res: dict[str, Any]) -> dict[str, Any]:
    """The figures printed on the terminal (the full result is books_experiment.json)."""
    pop, rec = res["popularity"], res["reconstruction"]
    return {
        "spearman_copies_vs_median_jaccard": pop["spearman_trained"],
        "median_jaccard_by_excerpt": {r["id"]: {"copies": r["copies"], "median_jaccard": r["median_jaccard"], "ci": r["median_jaccard_ci"]} for r in pop["by_excerpt"]},
        "held_out_max_median_jaccard": pop["held_out_max_median_jaccard"],
        "largest_verbatim_tokens_from_seed": rec["largest_verbatim_tokens_from_seed"],
        "suppression_table": {g: {s: (v[s]["median_jaccard"] if v[s] else None) for s in v} for g, v in res["groups"].items()},
        "suppression_steps": res["suppression"]["steps"],
        "weightdiff_attention_mlp_ratio": {k: w["attention_mlp_ratio"] for k, w in res["weightdiff"].items()},
    }


def books_experiment(
    out: OutOpt = None,
    testbed: Annotated[Optional[Path], typer.Option("--testbed", help="An existing books testbed (default: build one in OUT/testbed).")] = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Books experiment (Ma et al. 2025): duplication vs median Jaccard, autoregressive reconstruction,
    suppression by refusal fine-tuning and its undoing by a LoRA on other books, weight diff."""
    from rotelab.extraction.books_experiment import run_books_experiment, spec_for
    from rotelab.extraction.books_testbed import build_books_testbed, read_excerpts

    if testbed is not None:
        read_excerpts(testbed)  # one-line error before a run folder exists
    run = open_run(out, "extract books-experiment", {"testbed": testbed}, seed=seed)
    tb = testbed if testbed is not None else run.path / "testbed"
    if testbed is None:
        build_books_testbed(tb, seed=seed, progress=not quiet)
    run.add_input("testbed_excerpts", Path(tb) / "excerpts.jsonl")
    result = run_books_experiment(tb, run, seed=seed, spec=spec_for(tb), progress=not quiet)
    finish(run, headline(result), as_json=json_out, quiet=quiet)
