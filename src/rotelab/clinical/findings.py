"""From the ladder's flags to per-patient verdicts: findings, T5 on each, the support check.

A finding is the lowest rung (in ladder order) at which a patient is T2- or T1-flagged. T5
regenerates each finding's prompt under each perturbation (``n_perturb`` continuations) and
records the perturbed T2 share and d_EMD (``evidence/perturbation.parquet``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.clinical.cohort import Cohort, stop_ids
from rotelab.clinical.config import RANDOM, AuditConfig
from rotelab.clinical.generation import cut, dedupe, sample_continuations
from rotelab.clinical.perturb import fragile_t1, fragile_t2, perturb
from rotelab.clinical.sensitive import contains, cooccurrence, supporters
from rotelab.clinical.verdict import Finding, classify, individual_evidence, patient_verdict

if TYPE_CHECKING:
    from rotelab.clinical.demd import Trajectories
    from rotelab.core.models import HFLanguageModel
    from rotelab.core.runs import RunFolder


def first_flags(table: dict[str, np.ndarray], cfg: AuditConfig, P: int) -> list[tuple[int, str, str]]:
    """(patient, test, rung) of each patient's first T2 and T1 flag along the ladder."""
    order = {r: k for k, r in enumerate(cfg.rungs)}
    out = []
    for test, col in (("T2", "t2_flag"), ("T1", "t1_flag")):
        if test not in cfg.tests:
            continue
        best: dict[int, str] = {}
        for p, r, f in zip(table["patient"], table["rung"], table[col]):
            if f and (p not in best or order[r] < order[best[p]]):
                best[int(p)] = str(r)
        out += [(p, test, r) for p, r in sorted(best.items())]
    return out


def _row(table: dict[str, np.ndarray], P: int, rung: str, cfg: AuditConfig) -> slice:
    k = cfg.patient_rungs.index(rung) if rung != RANDOM else len(cfg.patient_rungs)
    return slice(k * P, (k + 1) * P)


def run_perturbations(run: "RunFolder", lm: "HFLanguageModel", cohort: Cohort, flags: list[tuple[int, str, str]], table: dict[str, np.ndarray],
                      cfg: AuditConfig, traj: "Trajectories | None", *, progress: bool) -> dict[str, list]:
    """T5 for every finding above the random rung: per perturbation, the perturbed share of the
    finding's code (T2) or its d_EMD (T1), the original value and the threshold."""
    jobs = []  # (finding index, perturbation, prompt, target)
    for f, (p, test, rung) in enumerate(flags):
        if rung == RANDOM:
            continue
        prompt, target = cohort.prompt(p, rung)
        for name, q in perturb(prompt, cohort.fmt, age_shift=cfg.age_shift).items():
            jobs.append((f, name, q, target))
    uniq, index = dedupe([q for _, _, q, _ in jobs])
    gens = sample_continuations(run, lm, "perturb", uniq, n=cfg.n_perturb, new_tokens=cfg.new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                seed=cfg.seed, batch_size=cfg.batch_size, progress=progress)
    stops = stop_ids(cohort.fmt)
    V = len(cohort.fmt.vocab)
    P = len(cohort)
    out: dict[str, list] = {k: [] for k in ("patient", "test", "rung", "perturbation", "code", "share", "d_emd", "original", "threshold", "fragile")}
    for (f, name, _, target), u in zip(jobs, index):
        p, test, rung = flags[f]
        rows = _row(table, P, rung, cfg)
        code = str(table["top_code"][rows][p]) if test == "T2" else ""
        if test == "T2":
            mask = np.zeros(V, dtype=bool)
            mask[cohort.fmt.ids[code]] = True
            value, original, threshold = float(contains(gens[u : u + 1], mask, stops).mean()), float(table["top_share"][rows][p]), cfg.p_th
            fragile = bool(fragile_t2(original, {name: value}, cfg.p_th))
        else:
            if traj is None:
                continue
            value = float(traj.distances(list(target[: cfg.new_tokens]), [cut(s, stops) for s in gens[u]]).mean())
            original, threshold = float(table["d_emd"][rows][p]), float(table["base_median"][rows][p])
            fragile = bool(fragile_t1({name: value}, threshold))
        for k, v in (("patient", p), ("test", test), ("rung", rung), ("perturbation", name), ("code", code), ("share", value if test == "T2" else np.nan),
                     ("d_emd", value if test == "T1" else np.nan), ("original", original), ("threshold", threshold), ("fragile", fragile)):
            out[k].append(v)
    return out


def record_evidence(cohort: Cohort, table: dict[str, np.ndarray], mink: np.ndarray | None, cfg: AuditConfig) -> tuple[list[list[str]], dict[str, Any]]:
    """Each patient's individual evidence (verdict rule 4: T4 Min-K%, and d_EMD / random-baseline
    median at each patient rung where T1 ran), calibrated on held-out patients; and the calibration."""
    P = len(cohort)
    ratios = None
    if "T1" in cfg.tests:
        ratios = {}
        for rung in cfg.patient_rungs:
            rows = _row(table, P, rung, cfg)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios[rung] = np.asarray(table["d_emd"][rows], dtype=float) / np.asarray(table["base_median"][rows], dtype=float)
    return individual_evidence(~cohort.members, cfg.evidence_quantile, mink=mink, ratios=ratios)


def verdicts(cohort: Cohort, table: dict[str, np.ndarray], flags: list[tuple[int, str, str]], perturbation: dict[str, list] | None, cfg: AuditConfig,
             evidence: list[list[str]] | None = None) -> tuple[list[str], list[str], list[dict]]:
    """Per patient: verdict, the evidence lines, and the findings (as dicts). ``evidence``: each
    patient's individual evidence (:func:`record_evidence`; none when omitted)."""
    P = len(cohort)
    fmt = cohort.fmt
    record = evidence if evidence is not None else [[] for _ in range(P)]
    # distinct member records: k identical copies of a record are one patient's record (the very
    # thing that gets memorized), never k patients supporting its codes
    members = list(dict.fromkeys(tuple(cohort.ids[i]) for i in range(P) if cohort.members[i]))
    targets = np.flatnonzero(cohort.sensitive_any).tolist()
    n_t, co, N = cooccurrence(members, targets, len(fmt.vocab))
    col = {t: j for j, t in enumerate(targets)}
    fragile: dict[tuple[int, str], list[str]] = {}
    if perturbation is not None:
        for p, test, name, fr in zip(perturbation["patient"], perturbation["test"], perturbation["perturbation"], perturbation["fragile"]):
            fragile.setdefault((int(p), test), [])
            if fr:
                fragile[(int(p), test)].append(name)
    by_patient: dict[int, list[Finding]] = {}
    rows_out: list[dict] = []
    for p, test, rung in flags:
        rows = _row(table, P, rung, cfg)
        population = rung == RANDOM
        tested = fragile.get((p, test)) if perturbation is not None else None
        if test == "T2":
            code = str(table["top_code"][rows][p])
            share = float(table["top_share"][rows][p])
            codes = [(code, share)] if code else []
            sup = []
            if code and not population:
                prompt, _ = cohort.prompt(p, rung)
                sup = [(fmt.vocab[t], lift, n) for t, lift, n in supporters(prompt, fmt.ids[code], n_t, co, col, N, lift=cfg.support_lift, min_patients=cfg.support_min)]
            f = Finding("T2", rung, population, codes, sup, tested, f"share {share:.2f} > p_th {cfg.p_th}", record[p])
        else:
            f = Finding("T1", rung, population, fragile=tested, evidence=record[p],
                        detail=f"d_EMD {table['d_emd'][rows][p]:.3f} vs random baseline median {table['base_median'][rows][p]:.3f}")
        by_patient.setdefault(p, []).append(f)
    verdict, evidence = [], []
    for p in range(P):
        v, lines = patient_verdict(by_patient.get(p, []))
        verdict.append(v)
        evidence.append("\n".join(lines))
        for f in by_patient.get(p, []):
            v1, why = classify(f)
            rows_out.append({"patient": p, "test": f.test, "rung": f.rung, "verdict": v1, "reason": why, "population": f.population,
                             "supported": bool(f.support), "fragile": None if f.fragile is None else bool(f.fragile), "evidence": bool(f.evidence),
                             "code": f.codes[0][0] if f.codes else ""})
    return verdict, evidence, rows_out


def support_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many findings each rule decided (for the report's reason table)."""
    out: dict[str, int] = {}
    for r in rows:
        why = ("random rung" if r["population"] else "supported" if r["supported"] else "fragile" if r["fragile"]
               else ("stable" if r["fragile"] is False else "not perturbed") + (", individual evidence" if r["evidence"] else ""))
        key = f"{r['test']}: {r['verdict']}: {why}"
        out[key] = out.get(key, 0) + 1
    return out
