"""The prompt ladder: sample continuations of every rung's prompts and measure T1 (d_EMD) and
T2 (sensitive-code shares) on them, per patient and rung (``evidence/ladder.parquet``).

The random rung is one shared pool of continuations of ``[BOS]``: its T2 shares are the same for
every patient, and its d_EMD to each patient's true trajectory at a rung is that rung's random
baseline (``base_mean``, ``base_median``; the random rung's own row carries the first patient
rung's). ``rate_<category>`` are the paper's per-attribute predictions (AUROC, AUPRC);
``top_code`` / ``top_share`` the patient's own sensitive code generated most often: a T2 flag
is ``top_share > p_th``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.clinical.cohort import Cohort, stop_ids
from rotelab.clinical.config import RANDOM, AuditConfig
from rotelab.clinical.demd import Trajectories
from rotelab.clinical.generation import dedupe, sample_continuations
from rotelab.clinical.sensitive import rates, true_hits
from rotelab.clinical.trajectory import flag_threshold, rung_distances, t1_flags

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.core.runs import RunFolder

LADDER = "evidence/ladder.parquet"


def sensitive_masks(cohort: Cohort) -> dict[str, np.ndarray]:
    return cohort.sensitive | {"any": cohort.sensitive_any}


def run_ladder(run: "RunFolder", lm: "HFLanguageModel", cohort: Cohort, cfg: AuditConfig, traj: Trajectories | None, *, progress: bool) -> dict[str, np.ndarray]:
    """Generate every rung (resumable chunks) and return the long per-(patient, rung) table."""
    stops = stop_ids(cohort.fmt)
    masks = sensitive_masks(cohort)
    kw = dict(new_tokens=cfg.new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed, batch_size=cfg.batch_size, progress=progress)
    pool = sample_continuations(run, lm, RANDOM, [list(cohort.start)], n=cfg.n_samples, **kw)[0]  # (n, L)
    pool_rates = {k: float(v[0]) for k, v in rates(pool[None], np.zeros(1, dtype=int), masks, stops).items()}
    P = len(cohort)
    cols: dict[str, list] = {}

    def add(rung: str, values: dict[str, Any]) -> None:
        for k, v in ({"patient": np.arange(P), "rung": [rung] * P} | values).items():
            cols.setdefault(k, []).extend(np.asarray(v).tolist() if not isinstance(v, list) else v)

    nan = np.full(P, np.nan)
    for rung in cfg.rungs:
        if rung == RANDOM:
            continue
        pairs = [cohort.prompt(i, rung) for i in range(P)]
        uniq, index = dedupe([p[0] if p else None for p in pairs])
        gens = sample_continuations(run, lm, rung, uniq, n=cfg.n_samples, **kw)
        targets = [p[1] if p else None for p in pairs]
        dist = rung_distances(traj, targets, gens, index, pool, stops, cfg.new_tokens) if traj is not None else {}
        share = rates(gens, index, masks, stops)
        top_code, top_share = own_codes(cohort, gens, index, stops)
        add(rung, {"prompt_tokens": np.array([len(p[0]) - len(cohort.start) if p else -1 for p in pairs]), "has_prompt": index >= 0,
                   **{k: dist.get(k, nan) for k in ("d_emd", "d_emd_sd", "base_mean", "base_median")},
                   **{f"rate_{k}": v for k, v in share.items()}, "top_code": top_code, "top_share": top_share})
    if RANDOM in cfg.rungs:
        base = {k: np.array(cols[k][:P]) if cols else nan for k in ("base_mean", "base_median")}
        top_code, top_share = own_codes(cohort, pool[None], np.zeros(P, dtype=int), stops)
        add(RANDOM, {"prompt_tokens": np.zeros(P, dtype=int), "has_prompt": np.ones(P, dtype=bool), "d_emd": base["base_mean"], "d_emd_sd": nan,
                     "base_mean": base["base_mean"], "base_median": base["base_median"],
                     **{f"rate_{k}": np.full(P, v) for k, v in pool_rates.items()}, "top_code": top_code, "top_share": top_share})
    return {k: np.asarray(v) for k, v in cols.items()}


def own_codes(cohort: Cohort, gens: np.ndarray, index: np.ndarray, stops: set[int]) -> tuple[list[str], np.ndarray]:
    """Per patient, the sensitive code of its own record generated most often, and that share
    ("" and 0 for a patient without one or without a prompt)."""
    P = len(cohort)
    top_code, top_share = [""] * P, np.zeros(P)
    memo: dict[tuple, tuple[str, float]] = {}
    for i in range(P):
        if not cohort.labels["any"][i] or index[i] < 0:
            continue
        mine = tuple(sorted({t for t in cohort.ids[i] if cohort.sensitive_any[t]}))
        key = (int(index[i]), mine)
        if key not in memo:
            hits = true_hits(gens[index[i]], mine, cohort.sensitive_any, stops)
            t, s = max(hits.items(), key=lambda x: (x[1], -x[0]))
            memo[key] = (cohort.fmt.vocab[t], s)
        top_code[i], top_share[i] = memo[key]
    return top_code, top_share


def add_flags(table: dict[str, np.ndarray], cohort: Cohort, cfg: AuditConfig) -> dict[str, Any]:
    """T1 and T2 flags per row (in place); returns the T1 thresholds per rung (or why none)."""
    members = cohort.members[table["patient"]]
    held = ~members
    label = cohort.labels["any"][table["patient"]]
    table["t2_flag"] = label & (table["top_share"] > cfg.p_th)
    table["t1_flag"] = np.zeros(len(label), dtype=bool)
    thresholds: dict[str, Any] = {}
    for rung in cfg.patient_rungs:
        rows = table["rung"] == rung
        thr, why = flag_threshold(table["d_emd"][rows], held[rows], cfg.t1_quantile)
        thresholds[rung] = {"threshold": thr} if why is None else {"threshold": None, "threshold_reason": why}
        table["t1_flag"][rows] = t1_flags(table["d_emd"][rows], thr)
    return thresholds
