"""Run-folder orchestration of ``recsys train``: store -> fit -> (VISTA) cache -> downstream -> eval.

Every stage is a :meth:`RunFolder.step`, so re-running into the same folder skips finished
stages. Files (under ``prefix``, "" for ``recsys train``): ``events/`` (the store),
``model.pt``, ``summaries.sqlite`` (VISTA), ``metrics.json``, ``per_user.parquet``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rotelab.core.io import file_sha256
from rotelab.core.runs import RunFolder
from rotelab.core.io import read_json, write_json
from rotelab.recsys.cache import SummaryCache
from rotelab.recsys.events import EventStore, build_store, open_store
from rotelab.recsys.models import Recommender
from rotelab.recsys.serve import load_model, save_model
from rotelab.recsys.train import TrainConfig, batches, evaluate, fit, model_config, split_users, write_summaries


def prepare_store(run: RunFolder, data: Path, *, name: str = "events") -> EventStore:
    out = run.file(name)
    return run.step(f"store:{name}", lambda: build_store(data, out), load=lambda: open_store(out))


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
        save_model(m, d / "model.pt")
        write_json(d / "fit.json", {"losses": losses})

    run.step(f"{tag}fit", _fit)
    model = load_model(d / "model.pt")
    cache = None
    if cfg.model == "vista":
        version = summary_version(d / "model.pt")
        cache = SummaryCache(d / "summaries.sqlite", dtype=cfg.cache_dtype)
        all_u = np.concatenate([train_u, test_u])
        run.step(f"{tag}summaries", lambda: write_summaries(model, store, all_u, cache, version, k=cfg.k, progress=progress))

        def _downstream() -> None:
            fit(model, data, cfg, epochs=cfg.downstream_epochs, cache=(cache, version), progress=progress, label="downstream")
            save_model(model, d / "downstream.pt")

        run.step(f"{tag}downstream", _downstream)
        model = load_model(d / "downstream.pt")
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
