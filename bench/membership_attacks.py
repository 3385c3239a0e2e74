"""Every membership attack on a testbed: AUC and TPR at 1% FPR with their intervals, the access
each needs, and the three choices issue 18 asked to measure.

1. All attacks on the testbed's members vs non-members (``mia``, ``--attacks all``; the testbed
   supplies the reference model, the non-member prefix pool and DC-PDD's frequency corpus).
2. GradNorm under both per-tensor norms: p = inf (MIMIR's default, rotelab's) and p = 2.
3. Min-K% / Min-K%++ with the papers' count int(n k) (rotelab's) vs the former ceil(n k): AUC of
   each, and how many scores the count changes.
4. Neighbourhood (embedding-neighbour generator) AUC against K, the neighbours per text.
5. Con-ReCaLL: it needs known members disjoint from the scored ones. Without the testbed split
   ``splits/member_prefix_pool.jsonl`` the first ``--member-pool`` member facts are set aside as
   the pool and Con-ReCaLL (and ReCaLL, for comparison) is scored on the remaining members.

Writes bench/results/membership_attacks_<testbed name>.json and prints the markdown table.

    OMP_NUM_THREADS=1 nice python bench/membership_attacks.py --testbed runs/tiny-s0
    OMP_NUM_THREADS=1 nice python bench/membership_attacks.py     # builds (once) the tiny testbed in runs/bench-mia/testbed
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from rotelab.core.data import read_jsonl
from rotelab.core.models import load_model
from rotelab.core.runs import read_parquet
from rotelab.core.signals import compute_signals
from rotelab.core.stats import auc_bootstrap_ci, roc_auc
from rotelab.membership.api import mia
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.context import MIAConfig

RESULTS = Path(__file__).parent / "results"


def ceil_lowest_mean(values: np.ndarray, k: float) -> float:
    """The former count: mean of the ceil(n k) smallest values."""
    return float(np.sort(values)[: max(1, math.ceil(len(values) * k))].mean())


def row(name: str, m: dict, access: str, n: str) -> dict:
    return {"attack": name, "access": access, "n": n, "auc": m["auc"], "auc_ci": m["auc_ci"],
            "tpr_1pct": m.get("tpr_at_1pct_fpr"), "tpr_1pct_ci": m.get("tpr_at_1pct_fpr_ci"), **({"details": m["details"]} if "details" in m else {})}


def access_of(attack: str) -> str:
    e = ATTACKS.get(attack)
    needs = e.meta["needs"].name.lower()
    res = ", ".join(e.meta["requires"])
    return needs + (f" + {res}" if res else "")


def fmt(r: dict) -> str:
    ci = r["auc_ci"]
    t, tci = r["tpr_1pct"], r["tpr_1pct_ci"]
    tpr = f"{t:.3f} [{tci[0]:.3f}, {tci[1]:.3f}]" if t is not None else "n/a"
    return f"| {r['attack']} | {r['access']} | {r['auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {tpr} | {r['n']} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--testbed", type=Path, default=None, help="an existing testbed folder (default: build the tiny one)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-mia"))
    ap.add_argument("--ks", default="4,8,16,32,50", help="Neighbourhood K values")
    ap.add_argument("--member-pool", type=int, default=20, help="member facts set aside as Con-ReCaLL's pool when the testbed has none")
    a = ap.parse_args()
    t0 = time.time()
    tb = a.testbed
    if tb is None:
        from rotelab.testbed import api

        tb = a.out / "testbed"
        api.build("tiny", out=tb, seed=0)
    out = a.out / tb.name
    mem = read_jsonl(tb / "splits/members.jsonl")
    non = read_jsonl(tb / "splits/nonmembers.jsonl")
    n_all = f"{len(mem)} / {len(non)}"
    lm = load_model(tb)
    rows, extra = [], {}

    # 1. every attack the testbed's resources allow
    m = mia(lm, mem, non, attacks="all", out=out / "all", cache=None)
    for name, v in m.items():
        if name != "bag_of_words":
            rows.append(row(name, v, access_of(name), n_all))
    extra["bag_of_words"] = m["bag_of_words"]
    man = json.loads((out / "all/manifest.json").read_text())
    extra["skipped_by_all"] = man["notes"].get("attacks_skipped", {})
    extra["companions"] = man["notes"].get("companions", {})

    # 2. GradNorm with p = 2 beside the default p = inf
    g2 = mia(lm, mem, non, attacks="gradnorm", config=MIAConfig(gradnorm_p="2"), out=out / "gradnorm_p2", cache=None)["gradnorm"]
    rows.append(row("gradnorm (p = 2)", g2, access_of("gradnorm"), n_all))
    for r in rows:
        if r["attack"] == "gradnorm":
            r["attack"] = "gradnorm (p = inf, default)"

    # 3. Min-K% / Min-K%++: floor (rotelab, the papers' code) vs the former ceil
    scores = read_parquet(out / "all/scores.parquet")
    labels = np.asarray(scores["label"], dtype=int)
    texts = [s.text for s in mem + non]
    sig = compute_signals(lm, texts, progress=False)
    k = MIAConfig().k
    ceil = {"mink": np.array([ceil_lowest_mean(s.logp.astype(np.float64), k) for s in sig]),
            "minkpp": np.array([ceil_lowest_mean((s.logp.astype(np.float64) - s.mu) / s.sigma, k) for s in sig])}
    extra["mink_floor_vs_ceil"] = {
        name: {"auc_floor": float(roc_auc(np.asarray(scores[name]), labels)), "auc_ceil": float(roc_auc(c, labels)),
               "auc_ceil_ci": list(auc_bootstrap_ci(c, labels)),
               "scores_changed": int((~np.isclose(np.asarray(scores[name]), c, rtol=0, atol=1e-9)).sum()), "n": len(c)}
        for name, c in ceil.items()}

    # 4. Neighbourhood AUC against K
    curve = {}
    for K in [int(x) for x in a.ks.split(",")]:
        v = mia(lm, mem, non, attacks="neighbourhood", config=MIAConfig(n_neighbours=K), out=out / f"neighbourhood_k{K}", cache=None, progress=False)["neighbourhood"]
        curve[K] = {"auc": v["auc"], "auc_ci": v["auc_ci"], "tpr_at_1pct_fpr": v.get("tpr_at_1pct_fpr")}
    extra["neighbourhood_k_curve"] = curve

    # 5. Con-ReCaLL with a member prefix pool disjoint from the scored members
    if "conrecall" not in m:
        facts = [s for s in mem if s.meta.get("kind") == "fact"][: a.member_pool]
        ids = {s.id for s in facts}
        rest = [s for s in mem if s.id not in ids]
        c = mia(lm, rest, non, attacks="recall,conrecall", member_prefix_pool=facts, out=out / "conrecall", cache=None)
        n_rest = f"{len(rest)} / {len(non)}"
        rows.append(row("conrecall", c["conrecall"], access_of("conrecall"), n_rest))
        rows.append(row("recall (same members as conrecall)", c["recall"], access_of("recall"), n_rest))
        extra["conrecall_pool"] = f"the first {len(facts)} member facts of {tb / 'splits/members.jsonl'}, removed from the scored members"

    res = {"testbed": str(tb), "seconds": round(time.time() - t0, 1), "rows": rows, **extra}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"membership_attacks_{tb.name}.json"
    path.write_text(json.dumps(res, indent=1, default=str))
    print("| attack | access | AUC [95% CI] | TPR at 1% FPR [95% CI] | members / non-members |\n|---|---|---|---|---|")
    print("\n".join(fmt(r) for r in rows))
    print(json.dumps({k: v for k, v in extra.items()}, indent=1, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
