"""Serving one request (a user and its candidates) and measuring what it costs.

- full attention reads the user's whole history from the memory-mapped store and lets every
  candidate attend over it: latency and memory grow with the history length N;
- VISTA reads Z with one point read from the summary cache plus the last ``recent`` events
  (a memory-mapped slice), so its cost does not depend on N. A user without a summary (cold) is
  served from the recent window alone and counted (:class:`ServeCounts`); no request fails for it.

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

MODEL_FORMAT = "rotelab.recsys/1"  # safetensors metadata "format" of a recsys model file


def save_model(model: Recommender, path: Path) -> None:
    """Write ``model`` as one safetensors file: the weights, and its :class:`ModelConfig` as JSON in
    the file's metadata (nothing in it can run code when read back)."""
    import json
    from dataclasses import asdict

    from safetensors.torch import save

    from rotelab.core.io import atomic_write_bytes

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata={"format": MODEL_FORMAT, "config": json.dumps(asdict(model.cfg))}))


def load_model(path: Path) -> Recommender:
    """Read a model written by :func:`save_model`. Anything else -- a pickle such as the ``model.pt``
    of earlier rotelab versions included -- is refused in one line and never executed."""
    import json

    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        old = path.with_suffix(".pt")
        hint = f" ({old.name} beside it is a pickle from an earlier rotelab and is never loaded; use another --out)" if old.exists() else ""
        raise RotelabError(f"{path}: model file not found{hint}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"metadata format {meta.get('format')!r}, expected {MODEL_FORMAT!r}")
            state = {k: f.get_tensor(k) for k in f.keys()}
        m = Recommender(ModelConfig(**json.loads(meta["config"])))
        m.load_state_dict(state)
    except (SafetensorError, ValueError, KeyError, TypeError, AssertionError, RuntimeError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise RotelabError(f"{path}: not a rotelab recsys model (safetensors with its config; pickles are never loaded): {why}") from None
    return m.eval()



@dataclass
class ServeCounts:
    """What a serving path did: requests served, and how many had no usable summary.

    ``cold``: no summary of the user in the cache (a new user, or one the stage-1 job has not
    reached); ``empty``: a summary covering no events (every event is newer than it). Both are
    served from the recent window alone (see :meth:`Recommender.filled`) and counted here.
    """

    requests: int = 0
    cold: int = 0
    empty: int = 0


def served_z(model: Recommender, cache: SummaryCache | None, version: str, users: list[int], counts: ServeCounts | None = None) -> torch.Tensor:
    """Z (B, S, d + 1) for ``users``, one point read each; a cold user gets :meth:`Recommender.no_summary`."""
    got = cache.get_many(users, version) if cache is not None else [None] * len(users)
    z = model.no_summary(len(users))
    for r, s in enumerate(got):
        if s is not None:
            z[r] = torch.as_tensor(s.z, dtype=z.dtype)
    if counts is not None:
        counts.requests += len(users)
        counts.cold += sum(s is None for s in got)
        counts.empty += sum(s is not None and s.n_events == 0 for s in got)
    return z


@torch.inference_mode()
def serve_request(model: Recommender, store: EventStore, u: int, cand: np.ndarray, *, cache: SummaryCache | None = None, version: str = "", counts: ServeCounts | None = None) -> np.ndarray:
    """Ranking probabilities (C, T) for user index ``u`` and candidate item ids ``cand`` (C,).

    VISTA reads the user's summary from ``cache``; a user without one (cold) is served from the
    recent window alone and counted in ``counts``."""
    if model.cfg.kind == "vista":
        z = served_z(model, cache, version, [int(u)], counts)
        hist = store.slice(u, -model.cfg.recent, None)[0]
    else:
        z = None
        start = -model.cfg.recent if model.cfg.kind == "recent" else 0
        hist = store.slice(u, start, None)[0]
        if counts is not None:
            counts.requests += 1
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
    cold_requests: int = 0  # timed requests served without a summary (from the recent window)


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
    counts = ServeCounts()
    t_all = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - t_all < min_time_s and len(times) < max_reps):
        t0 = time.perf_counter()
        serve_request(model, store, u, cand, cache=cache, version=version, counts=counts)
        times.append(time.perf_counter() - t0)
    peak_kb = _peak_kb() - base
    t = np.array(times) * 1e3
    n = store.length(u)
    read = n if model.cfg.kind == "full" else min(n, model.cfg.recent)
    return Latency(n, model.cfg.kind, float(np.median(t)), float(np.quantile(t, 0.9)), float(len(t) / (t.sum() / 1e3)), len(t), peak_kb / 1024, read, counts.cold)


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
