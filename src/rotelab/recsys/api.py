"""The Python API of ``rotelab recsys``: one entry point per command.

Each validates its configuration (and, for :func:`train`, parses and checks the whole log) before
its run folder exists, then opens the run folder, computes (resumable steps), builds the report
and returns what the command prints::

    from rotelab.recsys.api import synth, train
    from rotelab.recsys.config import SynthConfig, TrainConfig

    data = synth(out="runs/users", config=SynthConfig(n_users=100, lifelong_lens=()))["file"]
    metrics = train(data, out="runs/vista", config=TrainConfig(model="vista", epochs=2))
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rotelab.core.runs import open_run
from rotelab.errors import RotelabError
from rotelab.recsys.config import BenchConfig, SynthConfig, TrainConfig, check_bench, check_synth, check_train


def synth(*, out: Path | str | None = None, config: SynthConfig = SynthConfig(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write seeded synthetic lifelong users (``config.fmt``'s file format) into a run folder.

    Returns the file written, its format and the number of users (regular + lifelong).
    """
    from rotelab.recsys.synth import write_synthetic
    from rotelab.report import build_report

    cfg = check_synth(config)
    with open_run(out, "recsys synth", asdict(cfg), seed=cfg.seed, overwrite=overwrite) as run:
        path = run.step("synth", lambda: write_synthetic(run.path, cfg, progress=progress), load=lambda: _log_file(run.path))
        build_report(run.path)
    return {"file": str(path), "format": cfg.fmt, "n_users": cfg.n_users + len(cfg.lifelong_lens)}


def _log_file(folder: Path) -> Path:
    from rotelab.recsys.events import detect_format

    return detect_format(folder)[1]


def train(data: Path | str, *, out: Path | str | None = None, config: TrainConfig = TrainConfig(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one model (``config.model``: vista, full or recent) on a log and evaluate it on held-out users.

    ``data`` is a folder holding ``ratings.dat`` (ML-1M), ``ratings.csv`` (ML-20M) or
    ``log_standard*.csv`` (KuaiRand), or that file. The whole log is parsed and checked first;
    the run resumes only from work computed on the same log (SHA-256) and options.
    Returns the test metrics (HR@10, NDCG@10 with bootstrap intervals, per-task AUC).
    """
    from rotelab.recsys.events import read_events
    from rotelab.recsys.pipeline import prepare_store, train_model
    from rotelab.report import build_report

    cfg = check_train(config)
    log = read_events(data)
    enough = log.users_longer_than(cfg.k + 1)
    if enough < 2:
        raise RotelabError(f"{log.source}: {enough} users have more than --candidates + 1 = {cfg.k + 1} events; need >= 2 (a training and a test user)")
    options = asdict(cfg) | {"data": str(data)}
    with open_run(out, "recsys train", options, seed=cfg.seed, inputs={"data": log.source}, overwrite=overwrite, volatile=("data",)) as run:
        store = prepare_store(run, log)
        result = train_model(run, store, cfg, progress=progress)
        build_report(run.path)
    return {k: v for k, v in result.items() if k != "config"}


def bench(*, out: Path | str | None = None, config: BenchConfig = BenchConfig(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Quality of VISTA vs full vs recent-only, serving cost against history length, the cache
    ablations and the fallbacks (empty or missing summaries), on synthetic lifelong users.

    Returns the tables (``quality``, ``ablation``, ``fallback``, ``serving``,
    ``latency_growth_first_to_last``); ``bench.json`` in the run folder also holds the config.
    """
    from rotelab.recsys.bench import run_bench
    from rotelab.report import build_report

    cfg = check_bench(config)
    with open_run(out, "recsys bench", asdict(cfg), seed=cfg.train.seed, overwrite=overwrite) as run:
        result = run_bench(run, cfg, progress=progress)
        build_report(run.path)
    return {k: result[k] for k in ("quality", "ablation", "fallback", "serving", "latency_growth_first_to_last")}
