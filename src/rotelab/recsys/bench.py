"""``recsys bench``: quality of VISTA vs full vs recent-only, serving cost against history length,
the cache ablations (stale vs fresh summaries, int8 vs fp32) and the fallbacks (a user whose
summary is empty or missing, against the recent-only model), in one resumable run folder.

Outputs: ``bench.json`` (every table), ``figures/recsys_latency.png``, ``figures/recsys_quality.png``,
and one sub-folder per model (``full/``, ``recent/``, ``vista/``) as written by ``recsys train``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np

from rotelab.core.console import track
from rotelab.core.io import read_json
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.recsys.cache import SummaryCache
from rotelab.recsys.config import KINDS, BenchConfig
from rotelab.recsys.metrics import paired_rel_diff
from rotelab.recsys.pipeline import DOWNSTREAM, MODEL, prepare_store, summary_version, train_model
from rotelab.recsys.serve import load_model, measure, measure_in_child
from rotelab.recsys.synth import write_synthetic
from rotelab.recsys.train import evaluate, split_users, write_summaries


def _quality(run: RunFolder, results: dict[str, dict]) -> dict[str, Any]:
    """Per-model table and VISTA's relative gap to full attention (paired bootstrap over users)."""
    rows = []
    for kind, ev in results.items():
        row = {"model": kind, "hr@10": ev["hr@10"], "hr@10_ci": ev["hr@10_ci"], "ndcg@10": ev["ndcg@10"], "ndcg@10_ci": ev["ndcg@10_ci"], "n_test_users": ev["n_users_with_click"]}
        for t, m in ev["tasks"].items():
            if m["auc"] is not None:
                row[f"auc_{t}"], row[f"auc_{t}_ci"] = m["auc"], m["auc_ci"]
        rows.append(row)
    pu = {k: read_parquet(run.file(f"{k}/per_user.parquet")) for k in results}
    rel = {}
    for metric in ("hr@10", "ndcg@10"):
        for base in ("full", "recent"):
            if base in pu and "vista" in pu:
                d, ci = paired_rel_diff(pu["vista"][metric], pu[base][metric])
                rel[f"vista_vs_{base}_{metric}"] = {"rel_diff": d, "ci": ci}
    return {"rows": rows, "relative": rel}


def _ablations(run: RunFolder, store, cfg: BenchConfig) -> list[dict[str, Any]]:
    """VISTA downstream model scored with fresh / stale summaries, int8 / fp32 values."""
    tc = replace(cfg.train, model="vista")
    _, test_u = split_users(store, tc)
    model = load_model(run.file(f"vista/{DOWNSTREAM}"))
    version = summary_version(run.file(f"vista/{MODEL}"))
    foundation = load_model(run.file(f"vista/{MODEL}"))
    rows = []
    for dtype in ("int8", "fp32"):
        for stale in (0, *cfg.stale_events):
            path = run.file(f"ablation/{dtype}.sqlite")
            v = f"{version}-stale{stale}"
            with SummaryCache(path, dtype=dtype) as c:
                if c.users(v) != set(map(int, test_u)):
                    write_summaries(foundation, store, test_u, c, v, k=tc.k, drop_last=stale)
                ev = evaluate(model, store, test_u, tc, cache=(c, v))
                nbytes = c.get(int(test_u[0]), v).nbytes
            rows.append({"values": dtype, "stale_events": stale, "bytes_per_user": nbytes, "hr@10": ev["hr@10"], "hr@10_ci": ev["hr@10_ci"], "ndcg@10": ev["ndcg@10"],
                         **{f"auc_{t}": m["auc"] for t, m in ev["tasks"].items() if m["auc"] is not None}})
    return rows


def _fallback(run: RunFolder, store, cfg: BenchConfig, results: dict[str, dict]) -> list[dict[str, Any]]:
    """HR@10 of the VISTA downstream model on test users whose summary is fresh, empty (every event
    newer than it) or missing (cold users), beside the recent-only model: without a usable summary
    VISTA should serve as well as the recent window alone allows."""
    tc = replace(cfg.train, model="vista")
    _, test_u = split_users(store, tc)
    model = load_model(run.file(f"vista/{DOWNSTREAM}"))
    version = summary_version(run.file(f"vista/{MODEL}"))

    def row(serving: str, ev: dict) -> dict[str, Any]:
        return {"serving": serving, "hr@10": ev["hr@10"], "hr@10_ci": ev["hr@10_ci"], "ndcg@10": ev["ndcg@10"],
                "n_test_users": ev["n_users_with_click"], "n_cold_users": ev.get("n_cold_users"), "n_empty_summaries": ev.get("n_empty_summaries")}

    rows = [row("VISTA, fresh summary", results["vista"])]
    with SummaryCache(run.file("fallback.sqlite"), dtype=tc.cache_dtype) as c:
        empty = f"{version}-empty"
        write_summaries(load_model(run.file(f"vista/{MODEL}")), store, test_u, c, empty, k=tc.k, drop_last=int(store.lengths().max()))
        rows.append(row("VISTA, empty summary (every event newer)", evaluate(model, store, test_u, tc, cache=(c, empty))))
        rows.append(row("VISTA, no summary (cold user)", evaluate(model, store, test_u, tc, cache=(c, f"{version}-none"))))
    rows.append(row("recent-only model", results["recent"]))
    return rows


def _serving(run: RunFolder, store, cfg: BenchConfig, *, progress: bool) -> list[dict[str, Any]]:
    """Latency, requests/s and peak memory per (model, history length) on the lifelong users, and
    VISTA serving the longest of them cold (no summary: the recent window, counted in ``cold_requests``)."""
    lengths = store.lengths()
    targets = [int(np.flatnonzero(lengths == n)[0]) for n in cfg.synth.lifelong_lens]
    version = summary_version(run.file(f"vista/{MODEL}"))
    with SummaryCache(run.file("vista/summaries.sqlite")) as c:  # warm cache for the lifelong users
        missing = np.array([u for u in targets if c.get(u, version) is None], dtype=np.int64)
        if len(missing):
            write_summaries(load_model(run.file(f"vista/{MODEL}")), store, missing, c, version, k=0)
    rows = []
    jobs = [(kind, u, version) for kind in ("vista", "full") for u in targets] + [("vista", targets[-1], f"{version}-none")]
    for kind, u, v in track(jobs, description="serving", disable=not progress):
        lat = (measure_in_child if cfg.isolate else measure)(run.file(f"{kind}/{DOWNSTREAM if kind == 'vista' else MODEL}"), store.path, u,
                               cache_path=run.file("vista/summaries.sqlite") if kind == "vista" else None, version=v, n_cand=cfg.n_cand, min_time_s=cfg.serve_min_time_s)
        rows.append(asdict(lat))
    return rows


def _warm(serving: list[dict]) -> list[dict]:
    """The serving rows with a summary for every request (the cold row left out)."""
    return [r for r in serving if not r.get("cold_requests")]


def _figures(run: RunFolder, quality: dict, serving: list[dict], cfg: BenchConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for kind, mk in (("full", "o-"), ("vista", "s-")):
        r = [x for x in _warm(serving) if x["model"] == kind]
        n = [x["n_history"] for x in r]
        ax[0].plot(n, [x["median_ms"] for x in r], mk, label=kind)
        ax[1].plot(n, [x["peak_mb"] for x in r], mk, label=kind)
    for a, yl in zip(ax, ("median latency per request (ms)", "peak extra memory of the request path (MB)")):
        a.set_xscale("log"), a.set_xlabel("history length N (events)"), a.set_ylabel(yl), a.legend()
    ax[0].set_yscale("log")
    reps = ", ".join(f"{x['model']}@{x['n_history']}: {x['n_requests']}" for x in _warm(serving))
    fig.suptitle(f"{cfg.n_cand} candidates/request, 1 thread, warm cache; requests timed: {reps}", fontsize=7)
    fig.tight_layout()
    run.figure("recsys_latency", fig)

    rows = quality["rows"]
    metrics = [m for m in ("hr@10", "ndcg@10", "auc_is_click", "auc_is_like", "auc_liked") if all(m in r for r in rows)]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    w = 0.8 / len(rows)
    for i, r in enumerate(rows):
        x = np.arange(len(metrics)) + i * w
        y = [r[m] for m in metrics]
        err = np.array([[r[m] - r[f"{m}_ci"][0], r[f"{m}_ci"][1] - r[m]] for m in metrics]).T
        ax.bar(x, y, w, yerr=err, capsize=3, label=f"{r['model']} (n={r['n_test_users']} users)")
    ax.set_xticks(np.arange(len(metrics)) + w, metrics)
    ax.set_title(f"test users, 95% bootstrap CI, seed {cfg.train.seed}", fontsize=9)
    ax.legend(fontsize=8)
    run.figure("recsys_quality", fig)


def run_bench(run: RunFolder, cfg: BenchConfig = BenchConfig(), *, progress: bool = False) -> dict[str, Any]:
    data = run.file("data")
    run.step("synth", lambda: write_synthetic(data, cfg.synth, progress=progress))
    store = prepare_store(run, data)
    results = {kind: train_model(run, store, replace(cfg.train, model=kind), prefix=kind, progress=progress) for kind in KINDS}
    quality = _quality(run, results)
    ablation = run.step("ablation", lambda: _ablations(run, store, cfg), load=lambda: read_json(run.file("ablation.json")))
    run.write_json("ablation.json", ablation)
    fallback = run.step("fallback", lambda: _fallback(run, store, cfg, results), load=lambda: read_json(run.file("fallback.json")))
    run.write_json("fallback.json", fallback)
    serving = run.step("serving", lambda: _serving(run, store, cfg, progress=progress), load=lambda: read_json(run.file("serving.json")))
    run.write_json("serving.json", serving)
    by = {(r["model"], r["n_history"]): r for r in _warm(serving)}
    n0, n1 = min(cfg.synth.lifelong_lens), max(cfg.synth.lifelong_lens)
    growth = {k: by[(k, n1)]["median_ms"] / by[(k, n0)]["median_ms"] for k in ("vista", "full")}
    out = {"config": asdict(cfg), "quality": quality, "ablation": ablation, "fallback": fallback, "serving": serving, "latency_growth_first_to_last": growth}
    _figures(run, quality, serving, cfg)
    run.write_json("bench.json", out)
    return out
