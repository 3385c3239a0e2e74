"""Seeded synthetic lifelong users with planted long-range interests.

Items fall into ``n_clusters`` topics with Zipf popularity inside each topic. Every user has
``n_old`` *old* topics and ``n_current`` *current* topics:

- events [0, N/2): an old-topic item with probability ``p_signal``, else a random item;
- events [N/2, N - gap): uniform random items only (the old tastes fall silent);
- events [N - gap, N - k): a current-topic item with probability ``p_signal``, else random;
- the last ``k`` events are logged candidates (the DLRMv3 split): half from the user's topics
  (old or current, even odds), half random. ``is_click`` = 0.9 for a topic item, 0.05 otherwise;
  ``is_like`` = a click on an *old* topic (p 0.8); ``is_follow`` = a click on a current topic (p 0.5).

"Random" items are drawn from the user's *other* topics with the same within-topic Zipf profile,
so item popularity alone does not reveal a user's topics, and a taste is either in the history or not.

Because ``gap`` > 256, a model reading only the last 256 events never sees the old topics, so the
whole history measurably helps on half the candidates and on the whole ``is_like`` task.
The generator writes the real file formats (ML-1M ``ratings.dat``, ML-20M ``ratings.csv``,
KuaiRand ``log_standard_synth.csv``) so that the same loader reads synthetic and real data.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np

from rotelab.core.io import write_json
from rotelab.recsys.config import SynthConfig


def _topic_sampler(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """cluster of each item (0-based item ids) and the within-cluster Zipf weights."""
    cluster = rng.permutation(np.arange(cfg.n_items) % cfg.n_clusters)
    w = np.empty(cfg.n_items)
    for c in range(cfg.n_clusters):
        idx = np.flatnonzero(cluster == c)
        w[idx] = 1.0 / np.arange(1, len(idx) + 1) ** cfg.zipf
        w[idx] /= w[idx].sum()
    return cluster, w


def _draw_topic_items(rng, topics: np.ndarray, n: int, members: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    t = rng.choice(topics, size=n)
    out = np.empty(n, dtype=np.int64)
    for c in np.unique(t):
        sel = t == c
        out[sel] = rng.choice(members[c], size=int(sel.sum()), p=weights[c])
    return out


def user_events(rng: np.random.Generator, n: int, cfg: SynthConfig, members, weights) -> dict[str, np.ndarray]:
    """One user's events: items (0-based), per-task labels, and which topics produced them."""
    topics = rng.choice(cfg.n_clusters, size=cfg.n_old + cfg.n_current, replace=False)
    old, cur = topics[: cfg.n_old], topics[cfg.n_old :]
    # "random" items come from the user's other topics with the same Zipf profile: popularity alone
    # does not tell a user's items from the rest, and a taste is present in the history or absent
    others = np.setdiff1d(np.arange(cfg.n_clusters), topics)
    items = _draw_topic_items(rng, others, n, members, weights)
    kind = np.zeros(n, dtype=np.int8)  # 0 random, 1 old topic, 2 current topic
    h = n - cfg.k
    old_pos = np.flatnonzero(rng.random(n // 2) < cfg.p_signal)
    cur_lo = max(n // 2, h - cfg.gap)
    cur_pos = cur_lo + np.flatnonzero(rng.random(h - cur_lo) < cfg.p_signal)
    items[old_pos], kind[old_pos] = _draw_topic_items(rng, old, len(old_pos), members, weights), 1
    items[cur_pos], kind[cur_pos] = _draw_topic_items(rng, cur, len(cur_pos), members, weights), 2
    cand = h + np.arange(cfg.k)
    topical = cand[rng.random(cfg.k) < 0.5]
    is_old = rng.random(len(topical)) < 0.5
    for pos, o in zip(topical, is_old):
        items[pos] = _draw_topic_items(rng, old if o else cur, 1, members, weights)[0]
        kind[pos] = 1 if o else 2
    u = rng.random((3, n))
    click = np.where(kind > 0, u[0] < 0.9, u[0] < 0.05)
    like = click & (kind == 1) & (u[1] < 0.8)
    follow = click & (kind == 2) & (u[2] < 0.5)
    return {"items": items, "click": click, "like": like, "follow": follow}


def _lengths(rng, cfg: SynthConfig) -> np.ndarray:
    lo, hi = np.log(cfg.min_len), np.log(cfg.max_len)
    regular = np.exp(rng.uniform(lo, hi, size=cfg.n_users)).astype(np.int64)
    return np.concatenate([regular, np.asarray(cfg.lifelong_lens, dtype=np.int64)])


def iter_users(cfg: SynthConfig) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(cfg.seed)
    cluster, w = _topic_sampler(rng, cfg)
    members = [np.flatnonzero(cluster == c) for c in range(cfg.n_clusters)]
    weights = [w[m] for m in members]
    for uid, n in enumerate(_lengths(rng, cfg), start=1):
        yield uid, user_events(rng, int(n), cfg, members, weights)


def _table(uid: int, ev: dict[str, np.ndarray], t0: int, fmt: str):
    import pyarrow as pa

    n = len(ev["items"])
    ts = t0 + np.arange(n, dtype=np.int64) * 60  # one event a minute
    item = ev["items"] + 1
    if fmt == "kuairand":
        z = np.zeros(n, dtype=np.int8)
        ms = ts * 1000
        return pa.table({
            "user_id": np.full(n, uid), "video_id": item, "date": np.full(n, 20220408), "hourmin": np.full(n, 0),
            "time_ms": ms, "is_click": ev["click"].astype(np.int8), "is_like": ev["like"].astype(np.int8),
            "is_follow": ev["follow"].astype(np.int8), "is_comment": z, "is_forward": z, "is_hate": z,
            "long_view": ev["click"].astype(np.int8), "play_time_ms": ev["click"] * 15000, "duration_ms": np.full(n, 20000), "tab": np.full(n, 1),
        })
    rating = np.where(ev["like"], 5, np.where(ev["click"], 4, 1 + (item % 3)))
    if fmt == "ml-20m":
        return pa.table({"userId": np.full(n, uid), "movieId": item, "rating": rating.astype(np.float64), "timestamp": ts})
    e = pa.array([""] * n)  # ML-1M: '::' is ':' around an empty column
    return pa.table({"u": np.full(n, uid), "a": e, "i": item, "b": e, "r": rating, "c": e, "t": ts})


def write_synthetic(out: Path, cfg: SynthConfig = SynthConfig(), *, progress: bool = False) -> Path:
    """Write the synthetic log into ``out`` in ``cfg.fmt``; returns the file written."""
    import pyarrow.csv as pcsv

    from rotelab.core.console import track

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = {"kuairand": "log_standard_synth.csv", "ml-1m": "ratings.dat", "ml-20m": "ratings.csv"}[cfg.fmt]
    tmp = out / f".{name}.tmp"
    opts = pcsv.WriteOptions(include_header=cfg.fmt != "ml-1m", delimiter=":" if cfg.fmt == "ml-1m" else ",", quoting_style="none")
    n_total = cfg.n_users + len(cfg.lifelong_lens)
    with open(tmp, "wb") as f:
        writer = None
        for uid, ev in track(iter_users(cfg), total=n_total, description="synth users", disable=not progress):
            t = _table(uid, ev, 1_600_000_000 + uid * 7, cfg.fmt)
            if writer is None:
                writer = pcsv.CSVWriter(f, t.schema, write_options=opts)
            writer.write_table(t)
        writer.close()
    tmp.replace(out / name)
    write_json(out / "synth_config.json", asdict(cfg))
    return out / name
