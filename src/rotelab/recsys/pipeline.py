"""Run-folder orchestration of ``recsys train``: store -> fit -> (VISTA) cache -> downstream -> eval.

Every stage is a :meth:`RunFolder.step`, so re-running into the same folder skips finished
stages (the run folder's identity check makes sure they were computed from the same data and
options). Files (under ``prefix``, "" for ``recsys train``): ``events/`` (the store),
``model.safetensors`` (weights + config, see :func:`rotelab.recsys.serve.save_model`),
``summaries.sqlite`` and ``downstream.safetensors`` (VISTA), ``metrics.json``, ``per_user.parquet``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rotelab.core.io import file_sha256, read_json, write_json
from rotelab.core.runs import RunFolder
from rotelab.recsys.cache import SummaryCache
from rotelab.recsys.events import EventLog, EventStore, open_store, read_events, write_store
from rotelab.recsys.models import Recommender
from rotelab.recsys.serve import load_model, save_model
from rotelab.recsys.train import TrainConfig, batches, evaluate, fit, model_config, split_users, write_summaries


MODEL, DOWNSTREAM = "model.safetensors", "downstream.safetensors"


def prepare_store(run: RunFolder, data: EventLog | Path, *, name: str = "events") -> EventStore:
    """The run's event store (step ``store:<name>``), from a parsed log or a log path."""
    out = run.file(name)
    return run.step(f"store:{name}", lambda: write_store(data if isinstance(data, EventLog) else read_events(data), out), load=lambda: open_store(out))


def summary_version(model_file: Path) -> str:
    """Cache version = the foundation model's content hash: a new model never reads old summaries."""
    return "vista-" + file_sha256(model_file)[:12]


def train_model(run: RunFolder, store: EventStore, cfg: TrainConfig, *, prefix: str = "", progress: bool = False) -> dict[str, Any]:
    """Train one model kind into ``run`` (resumable) and return its test metrics."""
    d = run.file(prefix) if prefix else run.path
    d.mkdir(parents=True, exist_ok=True)
    tag = f"{prefix}:" if prefix else ""
    train_u, test_u = split_users(store, cfg)
    data = batches(store, train_u, cfg)

    def _fit() -> dict:
        torch.manual_seed(cfg.seed)  # the initialisation too: a rerun with the same seed gives the same model
        m = Recommender(model_config(cfg, store))
        epochs = cfg.epochs if cfg.model == "vista" else cfg.epochs + cfg.downstream_epochs
        losses = fit(m, data, cfg, epochs=epochs, progress=progress, label="foundation" if cfg.model == "vista" else "train")
        save_model(m, d / MODEL)
        write_json(d / "fit.json", {"losses": losses})

    run.step(f"{tag}fit", _fit)
    model = load_model(d / MODEL)
    cache = None
    if cfg.model == "vista":
        version = summary_version(d / MODEL)
        cache = SummaryCache(d / "summaries.sqlite", dtype=cfg.cache_dtype)
        all_u = np.concatenate([train_u, test_u])
        run.step(f"{tag}summaries", lambda: write_summaries(model, store, all_u, cache, version, k=cfg.k, progress=progress))

        def _downstream() -> None:
            fit(model, data, cfg, epochs=cfg.downstream_epochs, cache=(cache, version), progress=progress, label="downstream")
            save_model(model, d / DOWNSTREAM)

        run.step(f"{tag}downstream", _downstream)
        model = load_model(d / DOWNSTREAM)
        run.note(f"{tag}summary_version", version)

    def _eval() -> dict:
        ev = evaluate(model, store, test_u, cfg, cache=(cache, version) if cache else None)
        run.write_parquet(str((d / "per_user.parquet").relative_to(run.path)), ev.pop("per_user"))
        ev |= {"n_train_users": len(train_u), "train_losses": read_json(d / "fit.json")["losses"], "config": asdict(cfg)}
        write_json(d / "metrics.json", ev)
        return ev

    out = run.step(f"{tag}eval", _eval, load=lambda: read_json(d / "metrics.json"))
    if cache:
        cache.close()
    return out
