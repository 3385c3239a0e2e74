"""Serving one request (a user and its candidates) and measuring what it costs.

- full attention reads the user's whole history from the memory-mapped store and lets every
  candidate attend over it: latency and memory grow with the history length N;
- VISTA reads Z with one point read from the summary cache plus the last ``recent`` events
  (a memory-mapped slice), so its cost does not depend on N.

Peak memory is measured in a fresh interpreter per (model, N): the process's high-water resident
set (``VmHWM``), reset to the current RSS just before the first request, minus that RSS.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rotelab.errors import RotelabError
from rotelab.recsys.cache import SummaryCache
from rotelab.recsys.events import EventStore, open_store
from rotelab.recsys.models import ModelConfig, Recommender


def load_model(path: Path) -> Recommender:
    blob = torch.load(path)
    m = Recommender(ModelConfig(**blob["config"]))
    m.load_state_dict(blob["state"])
    return m.eval()


def save_model(model: Recommender, path: Path) -> None:
    import io
    from dataclasses import asdict

    from rotelab.core.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"config": asdict(model.cfg), "state": model.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


@torch.inference_mode()
def serve_request(model: Recommender, store: EventStore, u: int, cand: np.ndarray, *, cache: SummaryCache | None = None, version: str = "") -> np.ndarray:
    """Ranking probabilities (C, T) for user index ``u`` and candidate item ids ``cand`` (C,)."""
    if model.cfg.kind == "vista":
        s = cache.get(u, version) if cache is not None else None
        if s is None:
            raise RotelabError(f"VISTA: no summary of user {u} (version '{version}') in the summary cache; write the summaries first (recsys.train.write_summaries)")
        z = torch.as_tensor(s.z)[None]
        hist = store.slice(u, -model.cfg.recent, None)[0]
    else:
        z = None
        start = -model.cfg.recent if model.cfg.kind == "recent" else 0
        hist = store.slice(u, start, None)[0]
    h = torch.as_tensor(hist.astype(np.int64))[None]
    _, rank = model(h, torch.as_tensor(cand.astype(np.int64))[None], z)
    return torch.sigmoid(rank[0]).numpy()


@dataclass(frozen=True)
class Latency:
    n_history: int
    model: str
    median_ms: float
    p90_ms: float
    requests_per_s: float
    n_requests: int
    peak_mb: float
    events_read: int  # history events read from the store per request


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_kb() -> int:
    """Reset the resident-set high-water mark to the current RSS (Linux: ``5 > /proc/self/clear_refs``)
    and return that RSS in kB. Without the reset, ``ru_maxrss`` keeps the peak of loading the model
    and store, which hid the request path's own memory (every point read 0 MB, measured)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _status_kb("VmRSS") or 0


def _peak_kb() -> int:
    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(model_path: Path, store_path: Path, u: int, *, cache_path: Path | None, version: str, n_cand: int = 100, min_time_s: float = 2.0, max_reps: int = 2000, seed: int = 0) -> Latency:
    """Sequential requests for user ``u`` (after one warm-up) until ``min_time_s`` or ``max_reps``."""
    torch.set_num_threads(1)  # one request, one core: comparable and not disturbed by neighbours
    model, store = load_model(model_path), open_store(store_path)
    cache = SummaryCache(cache_path) if cache_path else None
    cand = np.random.default_rng(seed).integers(1, store.n_items + 1, size=n_cand)
    base = _reset_peak_kb()
    serve_request(model, store, u, cand, cache=cache, version=version)  # warm-up: first-call allocations
    times: list[float] = []
    t_all = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - t_all < min_time_s and len(times) < max_reps):
        t0 = time.perf_counter()
        serve_request(model, store, u, cand, cache=cache, version=version)
        times.append(time.perf_counter() - t0)
    peak_kb = _peak_kb() - base
    t = np.array(times) * 1e3
    n = store.length(u)
    read = n if model.cfg.kind == "full" else min(n, model.cfg.recent)
    return Latency(n, model.cfg.kind, float(np.median(t)), float(np.quantile(t, 0.9)), float(len(t) / (t.sum() / 1e3)), len(t), peak_kb / 1024, read)


def measure_in_child(model_path: Path, store_path: Path, u: int, **kwargs) -> Latency:
    """:func:`measure` in a fresh interpreter, so that peak memory is that request path's alone."""
    import json
    import subprocess
    import sys

    args = {"model_path": str(model_path), "store_path": str(store_path), "u": int(u)} | {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()}
    out = subprocess.run([sys.executable, "-m", "rotelab.recsys.serve", json.dumps(args)], capture_output=True, text=True, check=True)
    return Latency(**json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    import json
    import sys
    from dataclasses import asdict

    a = json.loads(sys.argv[1])
    lat = measure(Path(a.pop("model_path")), Path(a.pop("store_path")), a.pop("u"), cache_path=Path(a.pop("cache_path")) if a.get("cache_path") else a.pop("cache_path", None), **a)
    print(json.dumps(asdict(lat)))
