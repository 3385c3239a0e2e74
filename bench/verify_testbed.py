"""``rotelab verify`` on the testbed (issue 21's benchmark): every unlearning method in the
registry (:data:`rotelab.testbed.methods.METHODS`, read at run time, so methods added later are
included by name) at the 1.0x strength, plus the retrain null, for each seed; one verification
run folder per model under ``--work``. Every step resumes: testbeds, unlearning runs and
verification runs are run folders; a finished model's row is read back from ``row.json``.

Cost: the wall time of each verification beside the wall time of one forward pass (per-sample
loss, batch 32) over its forget + retain + holdout samples, measured in the same process after it.

Writes bench/results/verify_testbed.json (rows merged by (preset, seed, model)) and
bench/results/verify_testbed.md.

    nice -n 10 python bench/verify_testbed.py --preset tiny --seeds 0,1,2
    nice -n 10 python bench/verify_testbed.py --preset small --seeds 0 --methods npo,simnpo
    python bench/verify_testbed.py --table-only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from rotelab.core.io import read_json, write_json
from rotelab.testbed import api as testbed

RESULTS = Path(__file__).parent / "results"
STRENGTH = "1.0x"


def method_names(wanted: str | None) -> list[str]:
    from rotelab.testbed.methods import METHODS

    names = [m for m in METHODS.names() if m != "retrain"]
    if wanted:
        unknown = sorted(set(wanted.split(",")) - set(names) - {"retrain"})
        if unknown:
            sys.exit(f"unknown method(s) {unknown}; registry has {names}")
        names = [m for m in names if m in wanted.split(",")]
    return ["retrain", *names]  # the null control first


def forward_seconds(model_dir: Path, texts: list[str], batch: int = 32) -> float:
    """Wall time of one forward pass (per-sample mean NLL) over ``texts``, after one warm-up batch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    ctx = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 256)

    def run(chunk: list[str]) -> None:
        enc = tok(chunk, return_tensors="pt", padding=True, truncation=True, max_length=ctx)
        with torch.no_grad():
            model(**enc)

    run(texts[:batch])
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        run(texts[i:i + batch])
    return time.perf_counter() - t


def model_dir(path: Path) -> Path:
    return path / "model" if (path / "model").is_dir() and not (path / "config.json").exists() else path


def evaluate(preset: str, seed: int, method: str, work: Path) -> dict:
    from rotelab import verify_unlearning
    from rotelab.core.data import read_jsonl

    root = work / f"{preset}-s{seed}"
    tb = root / "testbed"
    testbed.build(preset, out=tb, seed=seed, progress=False)
    u = root / f"unlearn-{method}"
    testbed.unlearn(tb, method=method, seed=seed, out=u, progress=False)
    retrain = root / "unlearn-retrain"
    if method != "retrain":
        testbed.unlearn(tb, method="retrain", seed=seed, out=retrain, progress=False)
    target = u if method == "retrain" else u / "checkpoints" / STRENGTH
    if not target.exists():
        target = u / "model"  # the strength was not reached: the strongest (cap) model
    out = root / f"verify-{method}"
    row_file = out / "row.json"
    if row_file.exists():
        return read_json(row_file)
    t = time.perf_counter()
    res = verify_unlearning(target, retrained=None if method == "retrain" else retrain / "model",
                            original=tb / "model" if method == "retrain" else None, out=out, progress=False)
    wall = time.perf_counter() - t
    texts = [s.text for n in ("forget", "retain", "holdout") for s in read_jsonl(tb / "splits" / f"{n}.jsonl")]
    fwd = forward_seconds(model_dir(target), texts)
    row = {"preset": preset, "seed": seed, "method": method, "model": str(target), "verdict": res.get("verdict"),
           "detected_by": res.get("detected_by"), "evidence": res.get("evidence"), "attacks": res.get("attacks"), "extraction": res.get("extraction"), "remind": res.get("remind"), "seconds": res.get("seconds"),
           "oracle": res.get("oracle"), "verify_s": wall, "forward_s": fwd, "n_texts": len(texts), "cost_x_forward": wall / fwd}
    write_json(row_file, row)
    return row


def fmt_ev(e: dict) -> str:
    if e.get("auc") is None:
        return "n/a"
    lo, hi = e["auc_ci"]
    return f"{e['auc']:.2f} [{lo:.2f},{hi:.2f}]{'*' if e.get('detects') else ''}"


SHARES = ("quant8", "quant4", "relearn-retain", "relearn-split")


def share(r: dict, k: str) -> str:
    """The recovered share of the original-vs-unlearned forget-loss gap under attack ``k`` [95% CI]."""
    s = ((r.get("attacks") or {}).get(k) or {}).get("recovered_share_forget") or {}
    return "-" if s.get("share") is None else f"{s['share']:.2f} [{s['ci'][0]:.2f},{s['ci'][1]:.2f}]"


def table(rows: list[dict]) -> str:
    attacks = sorted({e["attack"] for r in rows for e in (r.get("evidence") or [])})
    head = ["preset", "seed", "method", "verdict", "detected by", *attacks, *[f"{k} recovered" for k in SHARES], "verify s", "x forward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["preset"], r["method"] != "retrain", r["method"], r["seed"])):
        ev = {e["attack"]: fmt_ev(e) for e in (r.get("evidence") or [])}
        lines.append("| " + " | ".join([r["preset"], str(r["seed"]), r["method"] + (" (null)" if r["method"] == "retrain" else ""), str(r["verdict"]),
                                        ",".join(r.get("detected_by") or []) or "-", *[ev.get(a, "-") for a in attacks], *[share(r, k) for k in SHARES],
                                        f"{r['verify_s']:.0f}", f"{r['cost_x_forward']:.0f}"]) + " |")
    costs = [r["cost_x_forward"] for r in rows]
    notes = ["", "Forgotten-vs-holdout AUC [95% CI]; * = detects (Holm-corrected, delta 0.05). 'recovered': share of the original-vs-unlearned forget-loss gap the attack brings back [95% CI]."]
    if costs:
        notes.append(f"Cost: verification / one forward pass over its samples, median {statistics.median(costs):.0f}x (range {min(costs):.0f}-{max(costs):.0f}, n={len(costs)} models).")
    hidden = sorted({f"{r['method']} (s{r['seed']}: {','.join(r['detected_by'])})" for r in rows if r["verdict"] == "hidden"})
    notes.append("Hidden: " + ("; ".join(hidden) if hidden else "none"))
    nulls = [r["verdict"] for r in rows if r["method"] == "retrain"]
    notes.append(f"Retrain null verdicts: {nulls}")
    return "\n".join(lines + notes) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=None, help="comma-separated registry names (default: all)")
    ap.add_argument("--work", type=Path, default=Path("runs/verify_testbed"))
    ap.add_argument("--table-only", action="store_true")
    a = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "verify_testbed.json"
    rows = {(r["preset"], r["seed"], r["method"]): r for r in (read_json(out)["rows"] if out.exists() else [])}
    if not a.table_only:
        for seed in [int(s) for s in a.seeds.split(",")]:
            for m in method_names(a.methods):
                t = time.time()
                r = evaluate(a.preset, seed, m, a.work)
                rows[(a.preset, seed, m)] = r
                write_json(out, {"rows": list(rows.values())})
                print(f"{a.preset} s{seed} {m}: {r['verdict']} by {r['detected_by']} ({time.time() - t:.0f}s)", file=sys.stderr, flush=True)
    md = table(list(rows.values()))
    (RESULTS / "verify_testbed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
