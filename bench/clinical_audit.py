"""The clinical audit on the ``small`` synthetic cohort, per seed: does each test find what was
planted? Per planted role (canary x1 / x4 / x16, held-out bait carriers, profile-implied codes,
plain members, held-out): mean Min-K% (T4), mean d_EMD at the headline rung (T1), verdict counts;
T4 AUC and T2 AUROC with intervals; wall time of training and of the audit; T4's one
teacher-forced pass per record against the authors' per-prefix loop (``--speed-records``), as a
median ratio over interleaved repeats.

    OMP_NUM_THREADS=1 nice -n 10 python bench/clinical_audit.py --seeds 0,1,2 --out runs/bench-clinical

The issue's speed targets (``--speed t1t2|t3|full``): one fresh ``audit()`` call (the public API, no
cache, a new run folder) on seed ``--seeds``'s cohort and model, timed end to end (model load,
cohort, generation, d_EMD, summary, figures, report). ``t1t2``: tests T1, T2 at rungs static
(required by the configuration) and 20; ``t3``: T3 alone (the paper's probe grid, no generation);
``full``: the default configuration (all tests and rungs, T5 at 10 continuations per prompt, the
paper's probe grid). ``--patients`` picks the per-split sample that gives that
many patients (train + held-out). Writes ``<out>/speed-<mode>-<patients>x<samples>-s<seed>.json``.

    OMP_NUM_THREADS=1 ROTELAB_THREADS=1 python bench/clinical_audit.py --speed t1t2 --patients 1000 --samples 100 --seeds 0
    python bench/clinical_audit.py --speed full --patients 1000 --samples 100 --seeds 0   # both cores: torch's 2 threads, T3 in 2 processes

Not run in CI (the small cohort's model trains for minutes). Writes ``<out>/clinical_audit.json``
and the README tables ``<out>/clinical_audit.md`` (``--table-only`` rewrites them from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def roles(cohort: str, subject_ids) -> np.ndarray:
    t = pq.read_table(f"{cohort}/truth/planted.parquet").to_pydict()
    row = {s: i for i, s in enumerate(t["subject_id"])}
    out = []
    for s in subject_ids:
        i = row[int(s)]
        out.append(f"canary{t['copies'][i]}" if t["canary_group"][i] >= 0 else "heldbait" if t["bait_code"][i]
                   else f"implied-{t['split'][i]}" if t["implied_code"][i] else t["split"][i])
    return np.array(out)


def per_prefix_mink(model, ids: list[int], k: float) -> float:
    """The authors' T4 loop (sanatonek/EHR-FM_memorization): one forward pass per prefix ids[:t],
    keeping log p(ids[t] | ids[:t]) from the last position; Min-K% of those."""
    import torch

    from rotelab.membership.attacks.pointwise import lowest_mean

    dev = next(model.parameters()).device
    x = torch.tensor(ids, device=dev)[None]
    with torch.no_grad():
        lp = [torch.log_softmax(model(x[:, :t]).logits[0, -1].float(), -1)[ids[t]].item() for t in range(1, len(ids))]
    return lowest_mean(np.asarray(lp, dtype=np.float64), k)


def t4_speed(model_dir: str, data: str, *, n: int, repeats: int, k: float = 0.2, seed: int = 0) -> dict:
    """T4 Min-K% on ``n`` records (half members, half held-out): rotelab's one teacher-forced pass
    per record (the audit's path: ``compute_signals`` without cache, then ``mink_score``; batched
    as in the audit, and one record per batch) against the authors' per-prefix loop. All warmed up
    once, then ``repeats`` interleaved rounds; the ratio is per round (loop time / one-pass time),
    reported as median and min-max. The scores must agree (``max_abs_score_diff``)."""
    import torch

    from rotelab.clinical.cohort import prepare_cohort, start_id
    from rotelab.clinical.config import AuditConfig
    from rotelab.clinical.medsio import read_meds
    from rotelab.clinical.tokens import format_of_model
    from rotelab.core.api import as_model
    from rotelab.core.models import LoadOptions
    from rotelab.core.signals import compute_signals
    from rotelab.membership.attacks.pointwise import mink_score

    meds = read_meds(data)
    lm = as_model(model_dir, LoadOptions())
    fmt, _ = format_of_model(lm, meds)
    cohort = prepare_cohort(meds, fmt, AuditConfig(max_patients=n // 2, seed=seed), bos_id=start_id(fmt, lm.tokenizer))
    texts = [cohort.text(i) for i in range(len(cohort))]
    enc = [lm.tokenizer(t)["input_ids"][: lm.max_length] for t in texts]

    def one_pass(batch_size: int = 64):
        return [mink_score(s, k=k) for s in compute_signals(lm, texts, batch_size=batch_size, cache=None, progress=False)]

    def one_pass_b1():
        return one_pass(1)

    def loop():
        return [per_prefix_mink(lm.model, ids, k) for ids in enc]

    a, a1, b = one_pass(), one_pass_b1(), loop()  # warm-up, and the check that all compute the same score
    ta, t1, tb = [], [], []
    for _ in range(repeats):
        for fn, acc in ((one_pass, ta), (one_pass_b1, t1), (loop, tb)):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    r, r1 = np.asarray(tb) / np.asarray(ta), np.asarray(tb) / np.asarray(t1)
    return {"records": len(texts), "mean_tokens": float(np.mean([len(e) for e in enc])), "repeats": repeats, "torch_threads": torch.get_num_threads(),
            "one_pass_s_median": float(np.median(ta)), "per_prefix_s_median": float(np.median(tb)),
            "one_pass_batch1_s_median": float(np.median(t1)),
            "ratio_median": float(np.median(r)), "ratio_min": float(r.min()), "ratio_max": float(r.max()),
            "ratio_batch1_median": float(np.median(r1)), "ratio_batch1_min": float(r1.min()), "ratio_batch1_max": float(r1.max()),
            "max_abs_score_diff": float(max(np.max(np.abs(np.asarray(a) - np.asarray(b))), np.max(np.abs(np.asarray(a1) - np.asarray(b)))))}


def one_seed(out: Path, seed: int, samples: int, probe_grid: str = "paper", max_patients: int | None = None, speed_n: int = 16, speed_repeats: int = 5) -> dict:
    from rotelab.clinical.api import audit, synth, train
    from rotelab.clinical.config import AuditConfig, synth_preset, train_preset

    t0 = time.perf_counter()
    data = synth(out=out / f"cohort-{seed}", config=synth_preset("small", seed=seed), progress=False)["data"]
    model = train(data, out=out / f"model-{seed}", config=train_preset("small", seed=seed), progress=False)
    t1 = time.perf_counter()
    run = out / f"audit-{seed}"
    s = audit(model["model"], data, out=run, config=AuditConfig(n_samples=samples, probe_grid=probe_grid, max_patients=max_patients, seed=seed), progress=False)
    t2 = time.perf_counter()
    ev = {k: np.asarray(v) for k, v in pq.read_table(run / "evidence" / "patients.parquet").to_pydict().items()}
    mink = np.asarray(pq.read_table(run / "evidence" / "membership.parquet").column("mink"))
    lad = {k: np.asarray(v) for k, v in pq.read_table(run / "evidence" / "ladder.parquet").to_pydict().items()}
    d = lad["d_emd"][lad["rung"] == "20"]
    kind = roles(data, ev["subject_id"])
    per = {k: {"n": int((kind == k).sum()), "mink": float(mink[kind == k].mean()), "d_emd_20": float(np.nanmean(d[kind == k])),
               "verdicts": dict(Counter(map(str, ev["verdict"][kind == k])))} for k in sorted(set(kind))}
    speed = t4_speed(model["model"], data, n=speed_n, repeats=speed_repeats, seed=seed) if speed_n else None
    return {"t4_speed": speed, "seed": seed, "train_s": round(t1 - t0, 1), "audit_s": round(t2 - t1, 1), "parameters": model["parameters"], "roles": per,
            "T4_mink": s["T4"]["mink"], "T2_20_members_any": s.get("T2", {}).get("20", {}).get("members", {}).get("any")}


def per_split(n_train: int, n_held: int, patients: int) -> int:
    """The smallest per-split cap m with min(m, n_train) + min(m, n_held) >= patients.

    >>> per_split(858, 212, 50), per_split(858, 212, 1000), per_split(858, 212, 5000)
    (25, 788, 858)
    """
    m = 1
    while min(m, n_train) + min(m, n_held) < patients and m < max(n_train, n_held):
        m += 1
    return m


def speed(out: Path, seed: int, mode: str, patients: int, samples: int, jobs: int = -1) -> dict:
    """Wall time of one fresh ``audit()`` (see the module docstring), with what it generated."""
    import torch

    from rotelab.clinical.api import audit, synth, train
    from rotelab.clinical.config import STATIC, AuditConfig, synth_preset, train_preset
    from rotelab.clinical.medsio import read_meds
    from rotelab.core.io import load_npy

    data = synth(out=out / f"cohort-{seed}", config=synth_preset("small", seed=seed), progress=False)["data"]
    model = train(data, out=out / f"model-{seed}", config=train_preset("small", seed=seed), progress=False)
    splits = Counter(s.split for s in read_meds(data).subjects)
    cap = per_split(splits["train"], splits["held_out"], patients)
    base = AuditConfig(n_samples=samples, max_patients=cap, jobs=jobs, seed=seed)
    cfg = {"t1t2": AuditConfig(tests=("T1", "T2"), rungs=(STATIC, "20"), n_samples=samples, max_patients=cap, seed=seed),
           "t3": AuditConfig(tests=("T3",), max_patients=cap, jobs=jobs, seed=seed), "full": base}[mode]
    run = out / f"speed-{mode}-{patients}x{samples}-s{seed}"
    shutil.rmtree(run, ignore_errors=True)
    load0 = os.getloadavg()
    t, c = time.perf_counter(), time.process_time()
    s = audit(model["model"], data, out=run, config=cfg, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    load1 = os.getloadavg()
    gens: dict[str, dict[str, int]] = {}
    for f in sorted((run / "generations").glob("*.npy")):
        a = load_npy(f)  # (prompts, continuations, tokens)
        g = gens.setdefault(f.stem.rsplit("-", 1)[0], {"prompts": 0, "continuations": 0, "tokens": 0})
        g["prompts"] += a.shape[0]
        g["continuations"] += a.shape[0] * a.shape[1]
        g["tokens"] += a.size
    tokens = sum(g["tokens"] for g in gens.values())
    n_pat = len(pq.read_table(run / "evidence" / "patients.parquet", columns=["subject_id"]))
    return {"mode": mode, "seed": seed, "tests": list(cfg.tests), "rungs": list(cfg.rungs), "samples": samples, "new_tokens": cfg.new_tokens,
            "n_perturb": cfg.n_perturb, "probe_grid": cfg.probe_grid, "max_patients_per_split": cap, "patients": n_pat, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "jobs": cfg.jobs,
            "generated": gens, "continuations": sum(g["continuations"] for g in gens.values()), "tokens_generated": tokens,
            "tokens_per_s": round(tokens / wall, 1), "tokens_per_cpu_s": round(tokens / cpu, 1), "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1, "parameters": model["parameters"],
            "T2_20_members_any": s.get("T2", {}).get("20", {}).get("members", {}).get("any")}


RATE_ROLES = {"x16 canaries": ("canary16",), "x4 canaries": ("canary4",), "x1 canaries": ("canary1",), "plain members": ("train",),
              "held-out (all)": ("held_out", "heldbait", "implied-held_out")}


def role_rate(roles: dict, names: tuple[str, ...]) -> tuple[int, int]:
    """(memorization verdicts, units) over the named roles; a canary's copies count as one record
    (they share prompts and verdicts: the counts must be multiples of the copies)."""
    hits = n = 0
    for name in names:
        v = roles.get(name)
        if not v:
            continue
        c = int(name[len("canary"):]) if name.startswith("canary") else 1
        h = v["verdicts"].get("memorization", 0)
        assert h % c == 0 and v["n"] % c == 0, f"{name}: copies disagree ({h} of {v['n']})"
        hits, n = hits + h // c, n + v["n"] // c
    return hits, n


def rate_table(res: list[dict]) -> list[str]:
    """Memorization verdict rate per planted role, per seed and pooled over seeds, with
    Clopper-Pearson 95% intervals (canaries: distinct records; others: patients)."""
    from rotelab.core.stats import rate_ci

    head = ["| planted role | " + " | ".join(f"seed {r['seed']}" for r in res) + " | pooled |", "|---" * (len(res) + 2) + "|"]
    rows = []
    for label, names in RATE_ROLES.items():
        cells, H, N = [], 0, 0
        for r in res:
            h, n = role_rate(r["roles"], names)
            H, N = H + h, N + n
            cells.append(_rate(rate_ci(h, n)))
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {_rate(rate_ci(H, N))} |")
    return ["Memorization verdict rate (Clopper-Pearson 95%; canaries counted as distinct records):", "", *head, *rows]


def _rate(r: dict) -> str:
    return "n/a" if r["rate"] is None else f"{r['rate']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] ({r['hits']}/{r['n']})"


def _auc(entry: dict | None, key: str = "auc", ci: str = "auc_ci") -> str:
    if not entry or entry.get(key) is None:
        return "n/a" + (f" ({entry.get(key + '_reason') or entry.get('auc_reason')})" if entry else "")
    lo, hi = entry[ci]
    return f"{entry[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(out: Path, res: list[dict]) -> str:
    """The README tables: per planted role, verdicts and mean scores; per seed, the AUCs with
    their 95% bootstrap intervals and the timings (from ``clinical_audit.json`` and each seed's
    ``audit-<seed>/summary.json``)."""
    lines = ["| seed | planted role | patients | verdicts (memorization / generalization / no finding) | mean Min-K% (T4) | mean d_EMD at rung 20 (T1) |",
             "|---|---|---|---|---|---|"]
    for r in res:
        for role, v in r["roles"].items():
            vd = v["verdicts"]
            lines.append(f"| {r['seed']} | {role} | {v['n']} | {vd.get('memorization', 0)} / {vd.get('generalization', 0)} / {vd.get('no finding', 0)} | {v['mink']:.3f} | {v['d_emd_20']:.3f} |")
    lines += ["", *rate_table(res)]
    lines += ["", "| seed | T4 Min-K% AUC | T4 loss AUC | T1 AUC (rung 20, members closer) | T2 AUROC any sensitive (rung 20, members) | T2 AUROC (rung 20, held-out) | T3 membership probe AUROC (fraction 0.5) | train s | audit s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in res:
        s = json.loads((out / f"audit-{r['seed']}" / "summary.json").read_text())
        t2 = s.get("T2", {}).get("20", {})
        t6 = next((g for g in s.get("T6", []) if g["subgroup"] == "all"), {})
        lines.append(f"| {r['seed']} | {_auc(s['T4'].get('mink'))} | {_auc(s['T4'].get('loss'))} | {_auc(s.get('T1', {}).get('20'), 'auc_closer_members')} "
                     f"| {_auc(t2.get('members', {}).get('any'), 'auroc', 'auroc_ci')} | {_auc(t2.get('held_out', {}).get('any'), 'auroc', 'auroc_ci')} | {_auc(t6.get('T3 membership probe AUROC'))} | {r['train_s']} | {r['audit_s']} |")
    sp = [r for r in res if r.get("t4_speed")]
    if sp:
        lines += ["", "| seed | records (mean tokens) | one pass, batched s | one pass, batch 1 s | per-prefix loop s | ratio vs batched: median [min, max] | ratio vs batch 1: median [min, max] | max score diff |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sp:
            t = r["t4_speed"]
            lines.append(f"| {r['seed']} | {t['records']} ({t['mean_tokens']:.0f}) | {t['one_pass_s_median']:.3f} | {t['one_pass_batch1_s_median']:.3f} | {t['per_prefix_s_median']:.2f} "
                         f"| {t['ratio_median']:.0f}x [{t['ratio_min']:.0f}, {t['ratio_max']:.0f}] | {t['ratio_batch1_median']:.0f}x [{t['ratio_batch1_min']:.0f}, {t['ratio_batch1_max']:.0f}] | {t['max_abs_score_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--probe-grid", default="paper", choices=("paper", "small"))
    ap.add_argument("--max-patients", type=int, default=None, help="per split (train, held_out), seeded sample")
    ap.add_argument("--speed-records", type=int, default=16, help="T4 one pass vs per-prefix loop on this many records (0: skip)")
    ap.add_argument("--speed-repeats", type=int, default=5)
    ap.add_argument("--out", default="runs/bench-clinical")
    ap.add_argument("--speed", choices=("t1t2", "t3", "full"), default=None, help="time one fresh audit (see the module docstring) instead")
    ap.add_argument("--patients", type=int, default=1000, help="with --speed: patients audited (train + held-out)")
    ap.add_argument("--jobs", type=int, default=-1, help="with --speed: T3 grid-search processes (-1: all cores; cpu_s counts this process only)")
    ap.add_argument("--table-only", action="store_true", help="rewrite <out>/clinical_audit.md from <out>/clinical_audit.json")
    a = ap.parse_args()
    out = Path(a.out)
    if a.speed:
        threads = os.environ.get("ROTELAB_THREADS")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        for seed in a.seeds.split(","):
            r = speed(out, int(seed), a.speed, a.patients, a.samples, a.jobs)
            (out / f"speed-{a.speed}-{a.patients}x{a.samples}-s{seed}.json").write_text(json.dumps(r, indent=1))
            print(json.dumps(r, indent=1))
        return
    if a.table_only:
        print(markdown(out, json.loads((out / "clinical_audit.json").read_text())))
        return
    res = [one_seed(out, int(s), a.samples, a.probe_grid, a.max_patients, a.speed_records, a.speed_repeats) for s in a.seeds.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    (out / "clinical_audit.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "clinical_audit.md").write_text(markdown(out, res))
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
