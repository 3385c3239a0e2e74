"""``rotelab signals``: score a model's per-token signals over a JSONL file and show them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.core.api import DEFAULT_CACHE, as_model, as_samples, data_identity, resolve_cache
from rotelab.core.cache import SignalCache
from rotelab.core.data import Sample
from rotelab.core.models import LanguageModel, LoadOptions
from rotelab.core.runs import RunFolder, open_run
from rotelab.core.signals import compute_signals, record_long_text, refuse_long_texts
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class SignalsConfig:
    batch_size: int = 32


def signals(
    model: LanguageModel | Path | str,
    data: list[Sample] | list[str] | Path | str,
    *,
    out: Path | str | None = None,
    batch_size: int = 32,
    load: LoadOptions = LoadOptions(),
    cache: SignalCache | None | object = DEFAULT_CACHE,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-token signals of ``model`` over ``data`` (a JSONL path, samples or strings), into a run folder.

    Returns ``summary.json``'s content. ``model`` is a loaded :class:`LanguageModel` or a model /
    testbed folder (opened with ``load``).

    >>> # rotelab.signals("runs/demo/testbed", "runs/demo/testbed/splits/members.jsonl", out="runs/sig")
    """
    if batch_size < 1:
        raise RotelabError(f"--batch-size must be >= 1; got {batch_size}")
    samples = as_samples(data, role="data")  # every input validated before a run folder exists
    lm = as_model(model, load)
    refuse_long_texts(lm, samples, where=str(data) if isinstance(data, (str, Path)) else None)
    inputs, data_option = data_identity("data", data, samples)
    options = dict(model=model if isinstance(model, (str, Path)) else lm.name, data=data_option, batch_size=batch_size, long_text=lm.long_text, dtype=str(getattr(lm, "dtype", "")))
    with open_run(out, "signals", options, inputs=inputs, models={"model": lm}, overwrite=overwrite, volatile=("batch_size",)) as run:
        run.note("tokenizer", str(getattr(lm, "source", "") or ""))
        result = inspect_signals(lm, samples, run, SignalsConfig(batch_size), cache=resolve_cache(cache), progress=progress)
        from rotelab.report import build_report

        build_report(run.path)
    return result


def inspect_signals(lm: LanguageModel, samples: list[Sample], run: RunFolder, cfg: SignalsConfig = SignalsConfig(), *, cache: SignalCache | None = None, progress: bool = True) -> dict[str, Any]:
    """Per-text summaries (NLL, entropy, share of argmax hits) and per-token log-probs.

    Writes ``signals.parquet`` (id, n_tokens, nll, mean_entropy, argmax_acc, token_ids, logp)
    and ``summary.json``.
    """
    counts: list = []
    sigs = compute_signals(lm, [s.text for s in samples], ids=[s.id for s in samples], batch_size=cfg.batch_size, cache=cache, progress=progress, counts_out=counts)
    record_long_text(run, counts[0])
    table = {
        "id": [s.id for s in samples],
        "n_tokens": np.array([len(g.token_ids) for g in sigs]),
        "nll": np.array([g.nll for g in sigs]),
        "mean_entropy": np.array([float(g.entropy.mean()) for g in sigs]),
        "argmax_acc": np.array([float(g.top1.mean()) for g in sigs]),
        "token_ids": [g.token_ids.tolist() for g in sigs],
        "logp": [g.logp.tolist() for g in sigs],
    }
    run.write_parquet("signals.parquet", table)
    nll = table["nll"]
    summary = {
        "model": lm.name,
        "n_texts": len(samples),
        "n_tokens_scored": int(sum(g.n_scored for g in sigs)),
        "nll_mean": float(nll.mean()),
        "nll_median": float(np.median(nll)),
        "argmax_acc_mean": float(table["argmax_acc"].mean()),
        "long_text": counts[0].as_dict(),
        "config": asdict(cfg),
    }
    run.write_json("summary.json", summary)
    _figure(run, nll)
    return summary


def _figure(run: RunFolder, nll: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(nll, bins=min(40, max(5, len(nll) // 5)), color="#4477aa")
    ax.set_xlabel("mean NLL per text (nats / token)")
    ax.set_ylabel("texts")
    ax.set_title(f"Per-text loss (n = {len(nll)})")
    run.figure("signals_nll", fig)
