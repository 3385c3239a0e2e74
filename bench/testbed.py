"""Build the ``small`` testbed, unlearn it with every method, and record the figures.

Writes bench/results/testbed_<preset>_seed<N>.json: build time, parameters, tokens/s, loss-attack
AUC by copies (seen >= 4, seen once, facts), extraction rates by copies, canary extraction, and the
forget / retain / holdout losses of GA, GradDiff, NPO at each strength and of the retrain control.

    python bench/testbed.py [--preset small] [--seed 0] [--out runs/bench-testbed] [--methods ga,graddiff,npo,retrain]

The defaults work under ``make bench`` (the ``small`` preset: about 10 minutes to build on 2 idle
cores, then each method); ``--preset tiny`` is the one-minute smoke configuration.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    from rotelab.testbed import api
    from rotelab.testbed.methods import METHODS

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-testbed"))
    ap.add_argument("--methods", default="all", help="'all' (every registered method) or a comma list")
    a = ap.parse_args()
    tb = a.out / f"{a.preset}-seed{a.seed}"
    t = time.time()
    api.build(a.preset, out=tb, seed=a.seed)
    ev = json.loads((tb / "eval.json").read_text())
    m = json.loads((tb / "manifest.json").read_text())
    res = {
        "preset": a.preset, "seed": a.seed, "build_seconds_this_run": round(time.time() - t, 1),
        "training": {k: {x: v[x] for x in ("seconds", "tokens", "tokens_per_s", "n_parameters", "steps")} for k, v in m["training"].items()},
        "sizes": m["sizes"],
        "loss_auc": {"by_copies": {c: [v["auc"], v["auc_ci"], v["n_members"]] for c, v in ev["loss_auc_books_by_copies"].items()},
                     "seen_ge4": ev["loss_auc_books_seen_ge4"], "seen_once": ev["loss_auc_books_seen_once"], "facts": ev["loss_auc_facts"]},
        "extraction_by_copies": ev["extraction_books_by_copies"],
        "extraction_seen_ge20": ev["extraction_books_seen_ge20"],
        "canaries_by_copies": ev["canary_secret_extraction_by_copies"],
        "unlearning": {},
    }
    for method in METHODS.resolve(a.methods, option="--methods"):
        t = time.time()
        r = api.unlearn(tb, method=method, seed=a.seed, out=a.out / f"{a.preset}-seed{a.seed}-{method}")
        res["unlearning"][method] = r | {"seconds": round(time.time() - t, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    p = RESULTS / f"testbed_{a.preset}_seed{a.seed}.json"
    p.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
