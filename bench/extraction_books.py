"""The books experiment at reduced scale (Ma et al. 2025, *Memorization: A Close Look at Books*).

Builds the ``books`` testbed (excerpts of ~1k tokens at 64 / 16 / 4 / 1 copies, 3 never trained),
then: sliding median Jaccard per excerpt and Spearman(copies, median Jaccard); autoregressive
reconstruction; suppression by a refusal fine-tune and its undoing by a LoRA on other excerpts;
weight diff of both. Writes ``bench/results/extraction_books.json`` (seed 0; other seeds: ``extraction_books_books_seed<N>.json``)
and prints the table. Runs with no arguments (``make bench``): the ``books`` testbed in
``runs/bench-books/testbed`` (~6 min on one idle core), the experiment in ``runs/bench-books/experiment``;
both resume.

    OMP_NUM_THREADS=1 ROTELAB_THREADS=1 nice -n 10 .venv/bin/python bench/extraction_books.py [--out runs/bench-books] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/bench-books"))
    ap.add_argument("--testbed", type=Path, default=None, help="reuse a built books testbed (default: OUT/testbed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="books", help="books | books-micro | books-long (reconstruction probe only)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rotelab.core.io import dumps, read_json
    from rotelab.extraction.api import books_experiment
    from rotelab.extraction.books.table import format_table
    from rotelab.extraction.books.testbed import build_books_testbed, get_spec

    tb = args.testbed or args.out / "testbed"
    t0 = time.time()
    build = build_books_testbed(tb, seed=args.seed, progress=False, spec=get_spec(args.preset))
    t_build = time.time() - t0
    if args.preset == "books-long":
        return _long_probe(tb, build, t_build, args)
    exp = args.out / "experiment"
    t1 = time.time()
    books_experiment(tb, out=exp, seed=args.seed, progress=False)
    res = read_json(exp / "books_experiment.json")
    t_exp = time.time() - t1
    res = res | {"build": build, "wall_seconds": {"build_incl_resume": round(t_build, 1), "experiment_incl_resume": round(t_exp, 1)}, "threads": args.threads}
    name = "extraction_books.json" if args.seed == 0 and args.preset == "books" else f"extraction_books_{args.preset}_seed{args.seed}.json"
    out = Path(__file__).parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(dumps(res) + "\n")
    print(format_table(res))
    print(f"\nbuild {t_build:.0f} s, experiment {t_exp:.0f} s (a resumed step takes ~0 s); results: {out}; run folder: {exp}")


def _long_probe(tb: Path, build: dict, t_build: float, args) -> None:
    """Autoregressive reconstruction of every excerpt of a books-long testbed (largest verbatim length)."""
    from rotelab.core.models import load_model
    from rotelab.core.io import atomic_write_text, dumps, read_json
    from rotelab.extraction.books.measure import reconstruct
    from rotelab.extraction.books.testbed import read_excerpts

    lm = load_model(tb)
    pre = read_json(tb / "manifest.json")["preset"]
    t = time.time()
    rec = {e["id"]: {"copies": e["copies"]} | reconstruct(lm, e["text"], prefix=pre["prefix_tokens"], suffix=pre["suffix_tokens"]) for e in read_excerpts(tb)}
    res = {"preset": args.preset, "seed": args.seed, "build": build, "reconstruction": rec, "wall_seconds": {"build_incl_resume": round(t_build, 1), "reconstruction": round(time.time() - t, 1)}}
    out = Path(__file__).parent / "results" / f"extraction_books_long_seed{args.seed}.json"
    atomic_write_text(out, dumps(res) + "\n")
    for k, r in rec.items():
        print(f"{k} ({r['copies']} copies): {r['verbatim_tokens_from_seed']}/{r['reconstructable_tokens']} tokens verbatim from the {r['seed_tokens']}-token seed; "
              f"longest verbatim run {r['longest_verbatim_run_tokens']}, token match {r['token_match_share']:.3f}; exact windows {r['exact_windows']['hits']}/{r['n_windows']}")
    print(f"build {t_build:.0f} s; results: {out}")


if __name__ == "__main__":
    main()
