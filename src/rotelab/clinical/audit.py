"""The audit in an open run folder: T4, the ladder (T1, T2), T5, the verdicts, T3, T6, the
summary (small-cell suppressed, no patient id) and the evidence files (per patient, with ids).

Run folder::

    summary.json                 what the command prints (no patient id unless --show-ids)
    evidence/patients.parquet    subject_id, split, subgroups, labels, verdict, evidence lines
    evidence/ladder.parquet      per patient and rung: d_EMD, random baseline, shares, flags
    evidence/findings.parquet    per finding: test, rung, verdict, reason
    evidence/perturbation.parquet, evidence/membership.parquet, evidence/probe.parquet
    generations/*.npy            sampled continuations (resumable chunks)
    cache/                       the signal cache of this run (never the user-wide one)
    figures/*.png, report.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from rotelab.clinical.cohort import Cohort
from rotelab.clinical.config import RANDOM, AuditConfig
from rotelab.clinical.privacy import auc_allowed, count, rate
from rotelab.core.io import read_json
from rotelab.core.runs import read_parquet
from rotelab.core.stats import auc_bootstrap_ci, bootstrap_ci, paired_bootstrap_ci, roc_auc

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.core.runs import RunFolder

SUMMARY = "summary.json"


def _table_step(run: "RunFolder", name: str, path: str, fn: Callable[[], dict]) -> dict[str, np.ndarray]:
    """A resumable step whose result is a table saved as Parquet."""

    def go():
        t = fn()
        run.write_parquet(path, {k: (list(v) if isinstance(v, list) else np.asarray(v)) for k, v in t.items()})
        return t

    out = run.step(name, go, load=lambda: read_parquet(run.file(path)))
    return {k: np.asarray(v) for k, v in out.items()}


def run_audit(run: "RunFolder", lm: "HFLanguageModel", cohort: Cohort, cfg: AuditConfig, *, progress: bool = True) -> dict[str, Any]:
    """Every chosen test on a validated cohort; returns ``summary.json``'s content."""
    from rotelab.clinical import figures
    from rotelab.clinical.demd import Trajectories, token_embeddings
    from rotelab.clinical.findings import first_flags, record_evidence, run_perturbations, support_counts, verdicts
    from rotelab.clinical.ladder import LADDER, add_flags, run_ladder
    from rotelab.clinical.membership import membership_scores
    from rotelab.clinical.subgroups import subgroup_table

    tests, k, P = set(cfg.tests), cfg.small_cell, len(cohort)
    members = cohort.members
    summary: dict[str, Any] = {"model": lm.name, "patients": {"members": count(int(members.sum()), k), "held_out": count(int((~members).sum()), k)},
                               "tests": list(cfg.tests), "small_cell": k}
    t4 = None
    if "T4" in tests:
        scores = _table_step(run, "t4", "evidence/membership.parquet", lambda: {"patient": np.arange(P)} | membership_scores(lm, cohort, run, k=cfg.min_k, progress=progress))
        t4 = scores["mink"]
        summary["T4"] = {a: _membership(scores[a], members, k, cfg.seed) for a in scores if a != "patient"}
    table = flags = pert = verdict = None
    if cfg.needs_generation:
        traj = None
        if "T1" in tests:
            E, source = token_embeddings(lm, cohort.fmt, cfg.embeddings)
            run.note("code_embeddings", source)
            traj = Trajectories(E, cohort.fmt.vocab, time_weighting=cfg.time_weighting)
        table = _table_step(run, "ladder", LADDER, lambda: run_ladder(run, lm, cohort, cfg, traj, progress=progress))
        thresholds = add_flags(table, cohort, cfg)
        flags = first_flags(table, cfg, P)
        if "T5" in tests:
            pert = _table_step(run, "t5", "evidence/perturbation.parquet", lambda: run_perturbations(run, lm, cohort, flags, table, cfg, traj, progress=progress))
        record, calibration = record_evidence(cohort, table, t4, cfg)
        run.note("verdict_rule", {"evidence_quantile": cfg.evidence_quantile, "sources": [k for k in calibration if k.startswith("T")]})
        verdict, evidence, finding_rows = verdicts(cohort, table, flags, pert, cfg, record)
        run.write_parquet("evidence/findings.parquet", {c: [r[c] for r in finding_rows] for c in ("patient", "test", "rung", "verdict", "reason", "code")})
        if "T1" in tests:
            summary["T1"] = _t1_summary(table, cohort, cfg, thresholds)
        if "T2" in tests:
            summary["T2"] = _t2_summary(table, cohort, cfg)
        if pert is not None:
            summary["T5"] = _t5_summary(pert, cfg)
        summary["verdicts"] = {split: {v: count(int(sum(1 for i in range(P) if verdict[i] == v and (members[i] == (split == "members")))), k)
                                       for v in ("memorization", "generalization", "no finding")} for split in ("members", "held_out")}
        summary["reasons"] = {r: count(n, k) for r, n in sorted(support_counts(finding_rows).items())}
        summary["verdict_rule"] = _rule(calibration, cohort, cfg)
    probe_scores = None
    if "T3" in tests:
        summary["T3"], probe_scores = _probe(run, lm, cohort, cfg, progress)
    _patients(run, cohort, verdict, evidence if verdict is not None else None, table, cfg)
    if "T6" in tests:
        headline = None
        if table is not None:
            rows = table["rung"] == cfg.t1_rung
            headline = {"t1_flag": table["t1_flag"][rows], "rate_any": table["rate_any"][rows]}
        fragile = None
        if pert is not None:
            fragile = {}
            for p, fr in zip(pert["patient"], pert["fragile"]):
                fragile[int(p)] = fragile.get(int(p), False) or bool(fr)
        summary["T6"] = subgroup_table(cohort, k=k, seed=cfg.seed, headline=headline, t4=t4, probe=probe_scores, fragile=fragile, verdict=verdict)
    if cfg.show_ids and verdict is not None:
        summary["subjects"] = [{"subject_id": int(cohort.subject_ids[i]), "split": str(cohort.split[i]), "verdict": verdict[i], "evidence": evidence[i]}
                               for i in range(P) if verdict[i] != "no finding"]
    run.write_json(SUMMARY, {k_: v for k_, v in summary.items() if k_ != "subjects"})
    figures.draw(run, cohort, cfg, summary, table, t4)
    return summary


def _rule(calibration: dict[str, Any], cohort: Cohort, cfg: AuditConfig) -> dict[str, Any]:
    """The verdict rules, their settings, and the evidence thresholds' calibration on held-out
    patients (how many meet each: a false-positive rate, small-cell suppressed)."""
    return {"rules": ["random rung: generalization", f"supported (lift >= {cfg.support_lift:g} over >= {cfg.support_min} patients): generalization",
                      f"fragile under T5 (p_th {cfg.p_th:g}; T1: the random-baseline median): memorization",
                      f"individual evidence (held-out quantile {cfg.evidence_quantile:g}): memorization", "otherwise: generalization"],
            "evidence_quantile": cfg.evidence_quantile,
            "evidence": {name: {"threshold": c["threshold"]} | ({"held_out_meeting_it": rate(c["held_out_hits"], c["held_out"], cfg.small_cell)} if "held_out" in c else {})
                         for name, c in calibration.items() if name.startswith("T")},
            "held_out_with_any_evidence": rate(calibration["held_out_hits_any"], int((~cohort.members).sum()), cfg.small_cell)}


def _membership(scores: np.ndarray, members: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    from rotelab.core.stats import summarize

    why = auc_allowed(int(members.sum()), int((~members).sum()), k)
    if why:
        return {"auc": None, "auc_reason": why}
    return summarize(scores, members.astype(int), seed=seed)


def _mean(x: np.ndarray, k: int) -> dict[str, Any]:
    x = x[np.isfinite(x)]
    if len(x) < k:
        return {"mean": None, "mean_reason": f"small cell (< {k})" if len(x) else "no patients", "n": count(len(x), k)}
    return {"mean": float(x.mean()), "ci": bootstrap_ci(x), "n": len(x)}


def _t1_summary(table, cohort: Cohort, cfg: AuditConfig, thresholds: dict) -> dict[str, Any]:
    k, out = cfg.small_cell, {}
    for rung in cfg.patient_rungs:
        rows = table["rung"] == rung
        d, base, m = table["d_emd"][rows], table["base_mean"][rows], cohort.members
        ok = np.isfinite(d)
        entry = {"members": _mean(d[m], k), "held_out": _mean(d[~m], k), "random_baseline": _mean(base, k), **thresholds[rung]}
        why = auc_allowed(int((ok & m).sum()), int((ok & ~m).sum()), k)
        entry |= {"auc_closer_members": None, "auc_reason": why} if why else {"auc_closer_members": roc_auc(-d[ok], m[ok]), "auc_ci": list(auc_bootstrap_ci(-d[ok], m[ok], seed=cfg.seed))}
        f = table["t1_flag"][rows]
        entry["flagged_members"] = rate(int(f[m].sum()), int((ok & m).sum()), k)
        entry["flagged_held_out"] = rate(int(f[~m].sum()), int((ok & ~m).sum()), k)
        out[rung] = entry
    return out


def _t2_summary(table, cohort: Cohort, cfg: AuditConfig) -> dict[str, Any]:
    from rotelab.clinical.sensitive import average_precision

    k, out = cfg.small_cell, {}
    for rung in cfg.rungs:
        rows = table["rung"] == rung
        entry: dict[str, Any] = {}
        for split, sel in (("members", cohort.members), ("held_out", ~cohort.members)):
            has = table["has_prompt"][rows].astype(bool) & sel
            per: dict[str, Any] = {}
            for cat in list(cohort.sensitive) + ["any"]:
                y, s = cohort.labels[cat][has].astype(int), table[f"rate_{cat}"][rows][has]
                why = auc_allowed(int(y.sum()), int((1 - y).sum()), k)
                if why:
                    per[cat] = {"auroc": None, "auroc_reason": why}
                    continue
                pred = s > cfg.p_th
                per[cat] = {"auroc": roc_auc(s, y), "auroc_ci": list(auc_bootstrap_ci(s, y, seed=cfg.seed)), "auprc": average_precision(s, y),
                            "auprc_ci": paired_bootstrap_ci((s, y), lambda a, b: average_precision(a, b) if 0 < b.sum() < len(b) else np.nan, seed=cfg.seed),
                            "precision_at_p_th": rate(int((pred & (y == 1)).sum()), int(pred.sum()), k), "recall_at_p_th": rate(int((pred & (y == 1)).sum()), int(y.sum()), k)}
            per["flagged"] = count(int(table["t2_flag"][rows][has].sum()), k)
            entry[split] = per
        if rung == RANDOM:
            entry["share_any"] = float(table["rate_any"][rows][0]) if rows.any() else None
        out[rung] = entry
    return out


def _t5_summary(pert: dict[str, np.ndarray], cfg: AuditConfig) -> dict[str, Any]:
    k, out = cfg.small_cell, {"p_th": cfg.p_th, "t1_threshold": "the patient's random-baseline median d_EMD", "n_perturb": cfg.n_perturb}
    for test in ("T1", "T2"):
        sel = pert["test"] == test
        if not sel.any():
            continue
        by: dict[int, bool] = {}
        for p, fr in zip(pert["patient"][sel], pert["fragile"][sel]):
            by[int(p)] = by.get(int(p), False) or bool(fr)
        out[test] = {"findings_tested": count(len(by), k), "fragile": rate(sum(by.values()), len(by), k),
                     **{f"fragile_under_{name}": rate(int(pert["fragile"][sel & (pert["perturbation"] == name)].sum()), int((sel & (pert["perturbation"] == name)).sum()), k)
                        for name in ("age", "sex")}}
    return out


def _probe(run: "RunFolder", lm, cohort: Cohort, cfg: AuditConfig, progress: bool) -> tuple[dict[str, Any], np.ndarray]:
    from rotelab.clinical.probe import last_token_states, probe_target

    def go():
        idx = [i for i in range(len(cohort)) if cohort.prompt(i, cfg.t1_rung) is not None]
        X = last_token_states(lm, [cohort.prompt(i, cfg.t1_rung)[0] for i in idx])
        idx = np.array(idx, dtype=int)
        mem = cohort.members[idx]
        targets = {cat: (idx[mem], X[mem], cohort.labels[cat][idx][mem]) for cat in cohort.sensitive} | {"membership": (idx, X, mem)}
        res: dict[str, Any] = {}
        rows: dict[str, list] = {"patient": [], "target": [], "fraction": [], "score": []}
        for name, (ids, Xt, y) in targets.items():
            res[name] = []
            for frac in cfg.probe_fractions:
                m, te, p = probe_target(Xt, y, fraction=frac, grid=cfg.probe_grid, seed=cfg.seed, jobs=cfg.jobs)
                res[name].append(m)
                if te is not None:
                    rows["patient"] += ids[te].tolist()
                    rows["target"] += [name] * len(te)
                    rows["fraction"] += [frac] * len(te)
                    rows["score"] += p.tolist()
        run.write_parquet("evidence/probe.parquet", rows)
        run.write_json("evidence/probe.json", res)
        return res

    res = run.step("t3", go, load=lambda: read_json(run.file("evidence/probe.json")))
    k = cfg.small_cell
    for name, entries in res.items():
        for m in entries:
            why = auc_allowed(m["n_positive"], m["n"] - m["n_positive"], k)
            if why:
                for key in [x for x in m if x not in ("fraction", "reason")]:
                    m.pop(key)
                m["reason"] = why
    t = read_parquet(run.file("evidence/probe.parquet"))
    scores = np.full(len(cohort), np.nan)
    if len(t["patient"]):
        sel = (t["target"] == "membership") & (t["fraction"] == max(cfg.probe_fractions))
        scores[t["patient"][sel].astype(int)] = t["score"][sel]
    return res, scores


def _patients(run: "RunFolder", cohort: Cohort, verdict, evidence, table, cfg: AuditConfig) -> None:
    """``evidence/patients.parquet``: the one file that maps patients to subject ids."""
    cols: dict[str, Any] = {"patient": np.arange(len(cohort)), "subject_id": cohort.subject_ids, "split": cohort.split.tolist(), "age": cohort.age}
    cols |= {f"group_{g}": v for g, v in cohort.groups.items()}
    cols |= {f"label_{c}": v for c, v in cohort.labels.items()}
    if verdict is not None:
        cols |= {"verdict": verdict, "evidence": evidence}
    run.write_parquet("evidence/patients.parquet", cols)
