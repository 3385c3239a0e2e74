"""REMIND on the testbed: unlearn with GA, GradDiff, NPO (checkpoints when the forget loss reaches
1.0x and 1.5x the loss on ``splits/stop_calibration.jsonl``, never-trained facts disjoint from the
holdout evaluated here) plus the retrain null control, then REMIND and every baseline on retained /
forgotten / holdout facts (``rotelab.remind``, one run folder per model under ``--work``).
Optionally the K curve first: REMIND's forgotten-vs-holdout AUC against the number of variants
per setting, from one probe at the largest K (``rotelab.membership.remind.curve``).

Writes bench/results/remind_testbed_<preset>.json (``_k<K>`` with ``--variants``), one row per
(seed, model) merged into what is there, so seeds can be run one invocation at a time (or side by
side), and prints the tables of the seed just run and of every seed in the file. Every step
resumes: testbeds, unlearning runs and REMIND runs are run folders, each K-curve model a JSON file.

    nice -n 10 python bench/remind_testbed.py                       # small preset, seeds 0,1,2 (hours on CPU)
    nice -n 10 python bench/remind_testbed.py --seeds 1             # one more seed into the same table
    nice -n 10 python bench/remind_testbed.py --k-curve 4,8,16,32 --curve-seeds 0 --curve-methods graddiff,npo
    nice -n 10 python bench/remind_testbed.py --preset tiny --seeds 0 --variants 4 --work /tmp/remind_bench
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from rotelab.core.data import read_jsonl
from rotelab.core.io import read_json, write_json
from rotelab.membership.remind.api import remind
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.suite import RemindConfig
from rotelab.testbed import api as testbed

METHODS = ("retrain", "graddiff", "npo", "ga")  # the null control first
BASELINES = ("loss", "minkpp", "neighbourhood", "rouge_l")
KEYS = ("auc_forgotten_vs_holdout", "auc_forgotten_vs_holdout_ci", "tpr_at_1pct_fpr_forgotten_vs_holdout", "tpr_at_1pct_fpr_forgotten_vs_holdout_reason",
        "auc_3way_macro", "auc_per_class", "confusion_matrix")


def prepare(preset: str, seed: int, work: Path) -> tuple[Path, dict, dict[str, Path]]:
    """The testbed, its REMIND sets, and every model to evaluate (name -> folder)."""
    tb = work / f"{preset}-s{seed}" / "testbed"
    testbed.build(preset, out=tb, seed=seed, progress=False)
    rd = lambda n: read_jsonl(tb / "splits" / f"{n}.jsonl")  # noqa: E731
    sets = {"retained": [s for s in rd("retain") if s.meta.get("kind") == "fact"], "forgotten": rd("forget"), "holdout": rd("holdout")}
    models = {}
    for m in METHODS:
        u = tb.parent / f"unlearn-{m}"
        testbed.unlearn(tb, method=m, seed=seed, out=u, progress=False)
        if m == "retrain":
            models["retrain (null)"] = u / "model"
        else:
            for c in sorted(p.name for p in (u / "checkpoints").iterdir()):
                models[f"{m} {c}"] = u / "checkpoints" / c
    models["base (no unlearning)"] = tb
    return tb, sets, models


def order(name: str) -> tuple[int, str]:
    """Table order: the retrain null first, the base model last, checkpoints by method."""
    return (0 if name.startswith("retrain") else 2 if name.startswith("base") else 1, name)


def short(name: str) -> str:
    return f"{name.split()[0]}-{name.split()[-1].strip('()')}"


def k_curve(name: str, path: Path, sets: dict, ks: list[int], seed: int, folder: Path) -> dict:
    """One model's K curve, saved as JSON (a finished model is read back; a killed probe resumes per batch)."""
    from rotelab.core.api import as_samples
    from rotelab.core.models import load_model
    from rotelab.membership.remind.curve import variant_curve

    out = folder / f"kcurve-{short(name)}.json"
    if out.exists():
        return read_json(out)
    t = time.time()
    cfg = RemindConfig(probe=ProbeConfig(seed=seed), seed=seed)
    rows = variant_curve(load_model(path), {st: as_samples(v, role=st) for st, v in sets.items()}, ks, config=cfg, passes=folder / f"kcurve-{short(name)}-passes")
    res = {"seed": seed, "model": name, "seconds_at_max_k": round(time.time() - t, 1), "rows": [{"k": r["k"], "forward_passes_per_sample": r["forward_passes_per_sample"], **{m: {k: r[m].get(k) for k in KEYS} for m in ("remind", "neighbourhood")}} for r in rows]}
    write_json(out, res)
    return res


def evaluate(name: str, path: Path, sets: dict, seed: int, variants: int | None, folder: Path) -> dict:
    """REMIND and its baselines on one model (a run folder: a finished run is read back)."""
    t = time.time()
    probe = ProbeConfig(seed=seed) if variants is None else ProbeConfig(k=variants, seed=seed)
    m = remind(path, sets["retained"], sets["forgotten"], sets["holdout"], paraphrases=[], out=folder / f"remind-{short(name)}", config=RemindConfig(probe=probe, seed=seed), cache=None, progress=False)
    row = {"seed": seed, "model": name, "variants": probe.k, "seconds": round(time.time() - t, 1), "n": m["remind"]["n"]}
    for meth, block in [("remind", m["remind"])] + list(m["baselines"].items()):
        row[meth] = {k: block.get(k) for k in KEYS}
    return row


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def table(rows: list[dict]) -> str:
    """Markdown: per model, REMIND per seed and mean, each baseline's mean, TPR@1%FPR, 3-way AUC."""
    seeds = sorted({r["seed"] for r in rows})
    head = ["model", *[f"REMIND s{s}" for s in seeds], "REMIND mean", "loss", "Min-K%++", "neighbourhood", "ROUGE-L",
            "TPR@1%FPR REMIND / best baseline", "3-way AUC REMIND / best baseline", "REMIND per-class AUC (ret/forg/hold)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        auc = lambda m, r: r[m]["auc_forgotten_vs_holdout"]  # noqa: E731
        per_seed = [_f(next((auc("remind", r) for r in rs if r["seed"] == s), None)) for s in seeds]
        base = {b: _mean([auc(b, r) for r in rs]) for b in BASELINES}
        best = max((b for b in BASELINES if base[b] is not None), key=lambda b: base[b])
        tpr = lambda m: _mean([r[m]["tpr_at_1pct_fpr_forgotten_vs_holdout"] for r in rs])  # noqa: E731
        three = lambda m: _mean([r[m]["auc_3way_macro"] for r in rs])  # noqa: E731
        pc = [_mean([r["remind"]["auc_per_class"][st] for r in rs if r["remind"].get("auc_per_class")]) for st in ("retained", "forgotten", "holdout")]
        out.append("| " + " | ".join([model, *per_seed, _f(_mean([auc("remind", r) for r in rs])), *(_f(base[b]) for b in BASELINES),
                                      f"{_f(tpr('remind'))} / {_f(tpr(best))} ({best})", f"{_f(three('remind'))} / {_f(max((three(b) for b in BASELINES if three(b) is not None), default=None))}",
                                      "/".join(_f(x) for x in pc)]) + " |")
    unl = [m for m in dict.fromkeys(r["model"] for r in rows) if not m.startswith(("retrain", "base"))]
    wins = sum(_mean([r["remind"]["auc_forgotten_vs_holdout"] for r in rows if r["model"] == m]) >= max(_mean([r[b]["auc_forgotten_vs_holdout"] for r in rows if r["model"] == m]) or 0 for b in BASELINES) for m in unl)
    null = _mean([r["remind"]["auc_forgotten_vs_holdout"] for r in rows if r["model"].startswith("retrain")])
    out.append(f"\nforgotten-vs-holdout AUC (mean over seeds {', '.join(map(str, seeds))}) >= best baseline on {wins}/{len(unl)} unlearned models; null {_f(null)}")
    return "\n".join(out)


def curve_table(curves: list[dict]) -> str:
    """Markdown: forgotten-vs-holdout AUC of REMIND (and neighbourhood) per model against K, and the mean."""
    ks = [r["k"] for r in curves[0]["rows"]]
    out = ["| model | seed | " + " | ".join(f"K={k}" for k in ks) + " | neighbourhood " + " / ".join(f"K={k}" for k in ks) + " |", "|" + "---|" * (len(ks) + 3)]
    for c in curves:
        out.append(f"| {c['model']} | {c['seed']} | " + " | ".join(_f(r["remind"]["auc_forgotten_vs_holdout"]) for r in c["rows"]) + " | " + " / ".join(_f(r["neighbourhood"]["auc_forgotten_vs_holdout"]) for r in c["rows"]) + " |")
    unl = [c for c in curves if not c["model"].startswith("retrain")]
    if unl:
        out.append("| mean of unlearned models | | " + " | ".join(_f(_mean([c["rows"][i]["remind"]["auc_forgotten_vs_holdout"] for c in unl])) for i in range(len(ks))) + " | |")
    out.append("| forward passes per sample | | " + " | ".join(str(r["forward_passes_per_sample"]) for r in curves[0]["rows"]) + " | |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", type=int, default=None, help="K per setting (default: REMIND's default)")
    ap.add_argument("--k-curve", default="", help="comma list of K for the curve (e.g. 4,8,16,32); empty: no curve")
    ap.add_argument("--curve-seeds", default="0")
    ap.add_argument("--curve-methods", default="graddiff,npo", help="unlearning methods (graddiff) or checkpoints (graddiff-1.0x) the curve covers, plus the retrain null")
    ap.add_argument("--curve-only", action="store_true", help="stop after the K curve")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-remind"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    k = a.variants or ProbeConfig().k
    results = Path(f"bench/results/remind_testbed_{a.preset}" + ("" if a.variants is None else f"_k{k}") + ".json")

    def record(key: str, entry: dict) -> dict:
        """Merge one row into the results file (re-read first: seeds run by separate invocations add up)."""
        doc = read_json(results) if results.exists() else {"preset": a.preset, "variants": k, "stop_calibration": "splits/stop_calibration.jsonl", "rows": [], "k_curve": []}
        doc[key] = [r for r in doc[key] if (r["seed"], r["model"]) != (entry["seed"], entry["model"])] + [entry]
        doc[key].sort(key=lambda r: (r["seed"], order(r["model"])))
        results.parent.mkdir(parents=True, exist_ok=True)
        write_json(results, doc)
        return doc

    if a.k_curve:
        ks = [int(k) for k in a.k_curve.split(",")]
        methods = a.curve_methods.split(",")
        for seed in [int(s) for s in a.curve_seeds.split(",")]:
            tb, sets, models = prepare(a.preset, seed, a.work)
            for name, path in models.items():
                if name.split()[0] in methods or short(name) in methods or name.startswith("retrain"):
                    c = k_curve(name, path, sets, ks, seed, tb.parent)
                    doc = record("k_curve", c)
                    print(f"K curve seed {seed} {name:22s} " + "  ".join(f"K={r['k']} {r['remind']['auc_forgotten_vs_holdout']:.3f}" for r in c["rows"]), flush=True)
        print(curve_table(doc["k_curve"]), flush=True)
        if a.curve_only:
            return
    for seed in seeds:
        tb, sets, models = prepare(a.preset, seed, a.work)
        for name, path in models.items():
            row = evaluate(name, path, sets, seed, a.variants, tb.parent)
            doc = record("rows", row)
            print(f"seed {seed} {name:22s} " + "  ".join(f"{k} {row[k]['auc_forgotten_vs_holdout']:.3f}" for k in ("remind", *BASELINES) if row[k]["auc_forgotten_vs_holdout"] is not None), flush=True)
        print(table([r for r in doc["rows"] if r["seed"] == seed]), flush=True)
    print(f"all seeds in {results}:", flush=True)
    print(table(doc["rows"]), flush=True)


if __name__ == "__main__":
    main()
