"""``rotelab verify`` on the testbed (issue 21's benchmark): every unlearning method in the
registry (:data:`rotelab.testbed.methods.METHODS`, read at run time, so methods added later are
included by name) at the 1.0x strength, plus the retrain null, for each seed; one verification
run folder per model under ``--work``. Every step resumes: testbeds, unlearning runs and
verification runs are run folders; a finished model's row is read back from ``row.json``.

Cost: the wall time of each verification beside the wall time of one forward pass (per-sample
loss, batch 32) over its forget + retain + holdout samples, measured in the same process after it.

Every method is verified against the testbed's retrain run as ``--retrained``, so its
quantization and relearning rows are controlled (the retrained model under the identical attack);
the retrain null itself is verified against a second retrain (:func:`null_oracle`, seed + 1000).
Stage wall times (build, unlearning per method, the null's oracle) go to ``<work>/<preset>-s<seed>/stages.json``.

Writes bench/results/verify_testbed[-TAG].json (rows merged by (preset, seed, model)) and
bench/results/verify_testbed[-TAG].md.

    nice -n 10 python bench/verify_testbed.py --preset tiny --seeds 0,1,2
    nice -n 10 python bench/verify_testbed.py --preset small --seeds 0 --methods npo,simnpo
    python bench/verify_testbed.py --table-only
    nice -n 10 python bench/verify_testbed.py --preset small --prepare-only    # testbeds and unlearning only
    nice -n 10 python bench/verify_testbed.py --preset tiny --quantize-bits 8,4,3 --relearn-steps 0 --no-remind --tag dose
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


def prepare(preset: str, seed: int, method: str, work: Path) -> tuple[Path, Path, Path]:
    """Build the testbed and run the unlearning (both resume); returns (testbed, verified model, retrain run)."""
    root = work / f"{preset}-s{seed}"
    tb = root / "testbed"
    t = time.perf_counter()
    testbed.build(preset, out=tb, seed=seed, progress=False)
    stage_seconds(root, "build", t)
    u = root / f"unlearn-{method}"
    t = time.perf_counter()
    testbed.unlearn(tb, method=method, seed=seed, out=u, progress=False)
    stage_seconds(root, f"unlearn-{method}", t)
    retrain = root / "unlearn-retrain"
    if method != "retrain":
        testbed.unlearn(tb, method="retrain", seed=seed, out=retrain, progress=False)
    target = u if method == "retrain" else u / "checkpoints" / STRENGTH
    if not target.exists():
        target = u / "model"  # the strength was not reached: the strongest (cap) model
    return tb, target, retrain


def stage_seconds(root: Path, stage: str, t0: float) -> None:
    """Record a stage's wall time in ``root/stages.json`` the first time it ran (a resumed stage takes ~0 s)."""
    f = root / "stages.json"
    d = read_json(f) if f.exists() else {}
    if stage not in d:
        d[stage] = round(time.perf_counter() - t0, 1)
        write_json(f, d)


NULL_SEED = 1000  # the retrain null's own oracle: the testbed's retrain recipe at seed + 1000


def null_oracle(tb: Path, out: Path, seed: int) -> Path:
    """A second model that never saw the forget set: the retrain method's recipe (preset model and
    training specs, retain + member prefix pool in training order, their copies) with another
    initialisation and data-order seed. The retrain null is verified against it, as every method is
    verified against the first, so the null's controlled attacks compare two never-trained models."""
    if (out / "config.json").exists():
        return out
    from dataclasses import fields, replace

    from transformers import PreTrainedTokenizerFast

    from rotelab.core.training import ModelSpec, TrainSpec, new_model, save_model_dir, train_on_schedule
    from rotelab.testbed.splits import in_training_order, read_split

    m = read_json(tb / "manifest.json")["preset"]
    spec_m = ModelSpec(**{f.name: m["model"][f.name] for f in fields(ModelSpec)})
    spec_t = replace(TrainSpec(**{f.name: m["train"][f.name] for f in fields(TrainSpec)}), seed=seed)
    rows = in_training_order(read_split(tb, "retain"), read_split(tb, "member_prefix_pool"))
    tok = PreTrainedTokenizerFast.from_pretrained(tb / "model")
    ids = [x[: spec_m.n_positions] for x in tok([r["text"] for r in rows])["input_ids"]]
    model = new_model(spec_m, seed=seed)
    train_on_schedule(model, ids, [r["copies"] for r in rows], spec_t, progress=False)
    save_model_dir(model, tok, out)
    return out


def evaluate(preset: str, seed: int, method: str, work: Path, config, tag: str = "") -> dict:
    from rotelab import verify_unlearning
    from rotelab.core.data import read_jsonl

    root = work / f"{preset}-s{seed}"
    tb, target, retrain = prepare(preset, seed, method, work)
    out = root / f"verify-{method}{tag}"
    row_file = out / "row.json"
    if row_file.exists():
        return read_json(row_file)
    if method == "retrain":
        t = time.perf_counter()
        oracle = null_oracle(tb, root / "retrain-null-oracle", seed + NULL_SEED)
        stage_seconds(root, "retrain-null-oracle", t)
    t = time.perf_counter()
    res = verify_unlearning(target, retrained=oracle if method == "retrain" else retrain / "model",
                            original=tb / "model" if method == "retrain" else None, out=out, config=config, progress=False)
    wall = time.perf_counter() - t
    texts = [s.text for n in ("forget", "retain", "holdout") for s in read_jsonl(tb / "splits" / f"{n}.jsonl")]
    fwd = forward_seconds(model_dir(target), texts)
    row = {"preset": preset, "seed": seed, "method": method, "model": str(target), "verdict": res.get("verdict"),
           "detected_by": res.get("detected_by"), "evidence": res.get("evidence"), "attacks": res.get("attacks"), "extraction": res.get("extraction"), "remind": res.get("remind"), "seconds": res.get("seconds"),
           "oracle": res.get("oracle"), "attack_control": res.get("attack_control"), "verify_s": wall, "forward_s": fwd, "n_texts": len(texts), "cost_x_forward": wall / fwd}
    write_json(row_file, row)
    return row


def fmt_ev(e: dict) -> str:
    if e.get("auc") is None:
        return "n/a"
    lo, hi = e["auc_ci"]
    return f"{e['auc']:.2f} [{lo:.2f},{hi:.2f}]{'*' if e.get('detects') else ''}"


SHARES = ("quant8", "quant4", "quant3", "relearn-retain", "relearn-split")


def share(r: dict, k: str) -> str:
    """The recovered share of the original-vs-unlearned forget-loss gap under attack ``k`` [95% CI]."""
    a = (r.get("attacks") or {}).get(k) or {}
    s = a.get("recovered_share_forget") or {}
    if s.get("share") is None:
        return "-"
    h = a.get("holdout_drop_share")
    return f"{s['share']:.2f} [{s['ci'][0]:.2f},{s['ci'][1]:.2f}]" + (f" (h {h:.2f})" if h is not None else "")


def table(rows: list[dict]) -> str:
    attacks = sorted({e["attack"] for r in rows for e in (r.get("evidence") or [])})
    shares = [k for k in SHARES if any(k in (r.get("attacks") or {}) for r in rows)]
    head = ["preset", "seed", "method", "verdict", "detected by", *attacks, *[f"{k} recovered" for k in shares], "verify s", "x forward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["preset"], r["method"] != "retrain", r["method"], r["seed"])):
        ev = {e["attack"]: fmt_ev(e) for e in (r.get("evidence") or [])}
        lines.append("| " + " | ".join([r["preset"], str(r["seed"]), r["method"] + (" (null)" if r["method"] == "retrain" else ""), str(r["verdict"]),
                                        ",".join(r.get("detected_by") or []) or "-", *[ev.get(a, "-") for a in attacks], *[share(r, k) for k in shares],
                                        f"{r['verify_s']:.0f}", f"{r['cost_x_forward']:.0f}"]) + " |")
    costs = [r["cost_x_forward"] for r in rows]
    notes = ["", "Forgotten-vs-holdout AUC [95% CI]; * = detects (Holm-corrected, delta 0.05). Quantization and relearning columns, when the row's "
             "attack control is 'retrained': 0.5 + AUC(attacked model) - AUC(retrained model under the identical attack), paired bootstrap "
             "(the retrain null is read against a second retrain, seed + 1000). 'recovered': share of the original-vs-unlearned forget-loss gap "
             "the attack brings back [95% CI], (h x) the holdout's loss drop in the same units.",
             "Attack control per row: " + str(sorted({str(r.get("attack_control")) for r in rows}))]
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
    ap.add_argument("--prepare-only", action="store_true", help="build the testbeds and unlearning runs, verify nothing")
    ap.add_argument("--quantize-bits", default="8,4", help="widths of the quantization attack (e.g. 8,4,3 for the dose-response)")
    ap.add_argument("--relearn-steps", type=int, default=None, help="the relearning budget (default: VerifyConfig's; 0 = no relearning)")
    ap.add_argument("--no-remind", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the verify folders and of the results files (a variant beside the main table)")
    a = ap.parse_args()
    from dataclasses import replace

    from rotelab.verify.api import VerifyConfig

    config = VerifyConfig(quantize_bits=tuple(int(b) for b in a.quantize_bits.split(",") if b), remind=not a.no_remind)
    if a.relearn_steps is not None:
        config = replace(config, relearn=replace(config.relearn, steps=a.relearn_steps))
    tag = f"-{a.tag}" if a.tag else ""
    if a.prepare_only:
        for seed in [int(s) for s in a.seeds.split(",")]:
            for m in method_names(a.methods):
                t = time.time()
                prepare(a.preset, seed, m, a.work)
                print(f"{a.preset} s{seed} {m}: prepared ({time.time() - t:.0f}s)", file=sys.stderr, flush=True)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"verify_testbed{tag}.json"
    rows = {(r["preset"], r["seed"], r["method"]): r for r in (read_json(out)["rows"] if out.exists() else [])}
    if not a.table_only:
        for seed in [int(s) for s in a.seeds.split(",")]:
            for m in method_names(a.methods):
                t = time.time()
                r = evaluate(a.preset, seed, m, a.work, config, tag)
                rows[(a.preset, seed, m)] = r
                write_json(out, {"rows": list(rows.values())})
                print(f"{a.preset} s{seed} {m}: {r['verdict']} by {r['detected_by']} ({time.time() - t:.0f}s)", file=sys.stderr, flush=True)
    md = table(list(rows.values()))
    (RESULTS / f"verify_testbed{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
