"""Run-folder workflows behind ``rotelab extract book|samples`` and ``rotelab weightdiff`` (resumable).

Each takes validated inputs and an open :class:`~rotelab.core.runs.RunFolder`; the entry points in
:mod:`rotelab.extraction.api` validate, load and open the folder first.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.core import stats
from rotelab.core.data import Sample
from rotelab.core.io import atomic_write_text, read_json
from rotelab.core.models import LanguageModel
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.extraction import book as B
from rotelab.extraction import samples as S
from rotelab.extraction.summary import plot_along_book, summarize_book


def run_book(lm: LanguageModel, plan: B.BookPlan, run: RunFolder, *, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Sliding or autoregressive extraction of one book into ``run``; returns the summary.

    Writes ``windows.parquet`` (per window: start, panel, texts), ``book_summary.json``,
    ``figures/extraction_along_book.png`` and, in autoregressive mode, ``reconstruction.txt``.
    """
    eff = plan.config
    for key, sentence in plan.notes.items():
        run.note(f"extraction_{key}", sentence, say=sentence)
    run.note("extraction_effective_config", asdict(eff))
    body = plan.body

    def decode() -> None:
        wins, gens, recon = B.decode_windows(lm, body, eff, bos=plan.bos, progress=progress)
        if recon is not None:
            atomic_write_text(run.file("reconstruction.txt"), lm.detokenize(recon))
        run.write_parquet("windows.parquet", B.score_windows(lm, wins, gens))

    run.step(f"book_windows_{eff.mode}", decode)
    cols = {k: list(v) for k, v in read_parquet(run.file("windows.parquet")).items()}
    summary = {"book": plan.name, "mode": eff.mode, "n_book_tokens": len(plan.ids), "n_body_tokens": len(body), "config": asdict(eff), "notes": plan.notes, "seed": seed}
    summary |= summarize_book(cols, seed=seed)
    if eff.mode == "autoregressive" and cols["start"]:
        ex = np.asarray(cols["exact"], dtype=bool)
        # longest verbatim run from the seed prefix: tokens reconstructed before the first miss
        first_miss = int(np.argmin(ex)) if not ex.all() else len(ex)
        summary["verbatim_tokens_from_seed"] = first_miss * eff.suffix_tokens
    run.write_json("book_summary.json", summary)
    if cols["start"]:
        title = f"{plan.name}: {eff.mode}, prefix {eff.prefix_tokens}, suffix {eff.suffix_tokens}, {len(cols['start'])} windows, greedy"
        run.figure("extraction_along_book", plot_along_book(cols, title=title))
    return summary


def _aggregate(cols: dict[str, list], sel: np.ndarray) -> dict[str, Any]:
    ok = sel & ~np.isnan(np.asarray(cols["em"], dtype=float))
    em, es = np.asarray(cols["em"], dtype=float)[ok], np.asarray(cols["es"], dtype=float)[ok]
    out = {"n": int(ok.sum()), "k_extractable": stats.rate_ci(int(np.asarray(cols["exact"])[ok].sum()), int(ok.sum()), reason="no sample long enough")}
    out["regurgitation"] = stats.rate_ci(int(np.asarray(cols["regurgitated"])[ok].sum()), int(ok.sum()), reason="no sample long enough")
    out["mean_token_match"] = float(np.mean(np.asarray(cols["match"], dtype=float)[ok])) if ok.any() else None
    out["mean_exact_memorization"] = float(em.mean()) if ok.any() else None
    out["mean_extraction_strength"] = float(es.mean()) if ok.any() else None
    return out


def _measure_samples(lm: LanguageModel, samples: list[Sample], cfg: S.SamplesConfig, *, progress: bool) -> dict[str, list]:
    """Columns of ``samples.parquet``: id, copies (-1 if none), match, exact, em, es, regurgitated, generated."""
    texts = [s.text for s in samples]
    P, T = cfg.prefix_tokens, cfg.suffix_tokens
    ext = S.k_extractable(lm, texts, prefix=P, suffix=T, batch_size=cfg.batch_size, progress=progress)
    hits = S.teacher_forced_hits(lm, texts, prefix=P, suffix=T, batch_size=cfg.batch_size)
    ids = lm.tokenize(texts)
    bos = len(lm.bos_ids)
    cols: dict[str, list] = {k: [] for k in ("id", "copies", "match", "exact", "em", "es", "regurgitated", "generated")}
    for s, e, h, x in zip(samples, ext, hits, ids):
        cols["id"].append(s.id)
        cols["copies"].append(int(s.meta["copies"]) if isinstance(s.meta.get("copies"), (int, float)) else -1)
        if e.exact is None:
            for k in ("match", "em", "es"):
                cols[k].append(float("nan"))
            cols["exact"].append(False)
            cols["regurgitated"].append(False)
            cols["generated"].append("")
            continue
        ref, gen = lm.detokenize(x[bos + P : bos + P + T]), lm.detokenize(e.generated)
        cols["match"].append(e.score)
        cols["exact"].append(e.exact)
        cols["em"].append(S.exact_memorization(h))
        cols["es"].append(S.extraction_strength(h))
        cols["regurgitated"].append(S.regurgitated(ref, gen))
        cols["generated"].append(gen)
    return cols


def run_samples(lm: LanguageModel, samples: list[Sample], cfg: S.SamplesConfig, run: RunFolder, *, progress: bool = True) -> dict[str, Any]:
    """k-extractability, EM, ES and regurgitation per sample (``samples.parquet``) and overall.

    Samples with a ``copies`` field are also summarised per copy count. Samples shorter than
    prefix + suffix tokens are counted in ``n_too_short`` and left out.
    """
    run.step("extract_samples", lambda: run.write_parquet("samples.parquet", _measure_samples(lm, samples, cfg, progress=progress)))
    cols = {k: list(v) for k, v in read_parquet(run.file("samples.parquet")).items()}
    n_short = int(np.isnan(np.asarray(cols["em"], dtype=float)).sum())
    allsel = np.ones(len(cols["id"]), dtype=bool)
    result: dict[str, Any] = {"n_samples": len(cols["id"]), "n_too_short": n_short, "config": asdict(cfg)} | _aggregate(cols, allsel)
    copies = np.asarray(cols["copies"])
    if (copies >= 0).any():
        result["by_copies"] = {str(c): _aggregate(cols, copies == c) for c in sorted(set(copies[copies >= 0].tolist()))}
    if n_short:
        run.note("extraction_too_short", n_short, say=f"{n_short} samples have fewer than {cfg.prefix_tokens}+{cfg.suffix_tokens} tokens and are left out")
    run.write_json("samples_summary.json", result)
    return result


def weightdiff_identity(base: Path, *, tuned: Path | None = None, adapter: Path | None = None) -> dict[str, dict]:
    """``inputs`` and ``models`` of a weight-diff run folder: the two models' fingerprints, or the
    base model's and the adapter's files (hashed)."""
    from rotelab.core.models import fingerprint_folder, resolve_model_dir

    models = {"base": fingerprint_folder(resolve_model_dir(base))}
    inputs: dict[str, Path] = {}
    if tuned is not None:
        models["tuned"] = fingerprint_folder(resolve_model_dir(tuned))
    else:
        inputs = {f"adapter/{f.name}": f for f in sorted(Path(adapter).iterdir()) if f.name == "adapter_config.json" or f.suffix == ".safetensors"}  # type: ignore[arg-type]
    return {"inputs": inputs, "models": models}


def run_weightdiff(base: Path, run: RunFolder, *, tuned: Path | None = None, adapter: Path | None = None) -> dict[str, Any]:
    """Weight diff of a full fine-tune (``tuned``) or a LoRA adapter against ``base``.

    Writes ``weightdiff.json`` (summary, groups, per-tensor rows) and two figures; returns the
    summary without the per-tensor rows.
    """
    from rotelab.core.models import resolve_model_dir
    from rotelab.extraction import weightdiff as W
    from rotelab.extraction.weightdiff_plots import heatmap, histogram

    base_dir = resolve_model_dir(base)
    pairs = W.adapter_pairs(base_dir, adapter) if adapter else W.full_pairs(base_dir, resolve_model_dir(tuned))  # type: ignore[arg-type]
    run.step("weightdiff", lambda: run.write_json("weightdiff.json", W.weight_diff(pairs)))
    res = read_json(run.file("weightdiff.json"))
    what = f"LoRA {adapter}" if adapter else f"{tuned}"
    if res["by_layer_type"]:
        run.figure("weightdiff_heatmap", heatmap(res, title=f"{what} vs {base}: {res['n_weights']:,} weights"))
    run.figure("weightdiff_histogram", histogram(res, title=f"{what} vs {base}"))
    return {k: v for k, v in res.items() if k not in ("tensors", "by_layer_type", "log10_r_histogram")}
