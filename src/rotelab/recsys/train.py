"""One training loop for the three models, the summary-cache passes, and the evaluation.

Split (DLRMv3 style): a user's last ``k`` events are the logged candidates with their task labels;
the events before are the user history (UIH). Users are split at random into train and test, so
test scores measure how well a model reads a history it has never seen.

Loss = sampled softmax over (clicked candidate, ``n_neg`` shared random items) for retrieval
+ sum of BCE over the ranking tasks + (VISTA foundation only) ``recon_weight`` * L_recon.
VISTA trains in two phases as in the paper: the foundation phase learns stage 1 and stage 2 end
to end; then Z is written to the :class:`SummaryCache` for every user, and the downstream phase
trains stage 2 on Z *read from the cache* (no gradient into stage 1). Evaluation reads the cache too.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from rotelab.core.console import progress as progress_bar
from rotelab.core.stats import bootstrap_ci
from rotelab.recsys.cache import SummaryCache
from rotelab.recsys.config import TrainConfig
from rotelab.recsys.events import EventStore
from rotelab.recsys.metrics import hr_ndcg, rank_of_positive, task_metrics
from rotelab.recsys.models import ModelConfig, Recommender
from rotelab.recsys.serve import ServeCounts, served_z


def model_config(cfg: TrainConfig, store: EventStore) -> ModelConfig:
    return ModelConfig(cfg.model, store.n_items, len(store.tasks), cfg.d, cfg.heads, cfg.n_seeds, cfg.recent)


def split_users(store: EventStore, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) user indices; users with too few events for a history are left out."""
    ok = np.flatnonzero(store.lengths() > cfg.k + 1)
    perm = np.random.default_rng(cfg.seed).permutation(ok)
    n_test = max(1, int(round(cfg.test_frac * len(perm))))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def user_batch(store: EventStore, users: np.ndarray, cfg: TrainConfig, *, shift: int = 0) -> dict[str, torch.Tensor]:
    """Padded tensors for ``users``: hist (B, N) left-padded with 0, cand (B, k), labels (B, k, T).

    Candidates are events [n - k - shift, n - shift), the history is every event before them
    (``shift`` > 0 makes extra training examples from earlier cut points, as sequential
    recommenders train on every prefix). Only the last ``max_len`` history events are read.
    """
    hists, cands, labels = [], [], []
    bits = 1 << np.arange(len(store.tasks))
    for u in users:
        n = store.length(int(u)) - shift
        h, _, _ = store.slice(int(u), max(0, n - cfg.k - cfg.max_len), n - cfg.k)
        c, _, lab = store.slice(int(u), n - cfg.k, n)
        hists.append(h)
        cands.append(c)
        labels.append((lab[:, None] & bits) > 0)
    N = max(1, max(len(h) for h in hists))
    hist = np.zeros((len(users), N), dtype=np.int64)
    for r, h in enumerate(hists):
        hist[r, N - len(h) :] = h
    return {"users": torch.as_tensor(np.asarray(users)), "hist": torch.as_tensor(hist), "cand": torch.as_tensor(np.stack(cands).astype(np.int64)), "labels": torch.as_tensor(np.stack(labels), dtype=torch.float32)}


def batches(store: EventStore, users: np.ndarray, cfg: TrainConfig) -> list[dict[str, torch.Tensor]]:
    """Training batches: users sorted by history length (less padding), at ``cuts`` cut points
    ``cut_stride`` events apart (the latest cut is the logged candidates)."""
    order = users[np.argsort(store.lengths()[users], kind="stable")]
    return [user_batch(store, order[i : i + cfg.batch_size], cfg, shift=c * cfg.cut_stride) for c in range(cfg.cuts) for i in range(0, len(order), cfg.batch_size)]


def cached_z(cache: SummaryCache, version: str, users: torch.Tensor) -> torch.Tensor:
    """Z (B, S, d) for a batch, read from the store (one point read per user)."""
    got = cache.get_many(users.tolist(), version)
    missing = [int(u) for u, s in zip(users, got) if s is None]
    assert not missing, f"no summary for users {missing[:5]} (version {version})"
    return torch.as_tensor(np.stack([s.z for s in got]))


def _recon_targets(hist: torch.Tensor, m: int, gen: torch.Generator) -> torch.Tensor:
    """m history items per user sampled without replacement, in time order: (B, m)."""
    real = (hist > 0).float()
    m = int(min(m, real.sum(1).min().item()))
    pos = torch.sort(torch.multinomial(real, m, generator=gen), dim=1).values
    return hist.gather(1, pos)


def _withhold(model: Recommender, z: torch.Tensor | None, p: float, gen: torch.Generator) -> torch.Tensor | None:
    """Z with each user's summary withheld (replaced by :meth:`Recommender.no_summary`) with
    probability ``p``: the scorer also learns to serve from the recent window alone, as it must for
    a cold user or an empty summary (dropout of the warm-start input, as DropoutNet, Volkovs et al. 2017)."""
    if z is None or p == 0:
        return z
    drop = torch.rand(z.shape[0], generator=gen) < p
    return torch.where(drop[:, None, None], model.no_summary(z.shape[0]), z)


def _loss(model: Recommender, b: dict, cfg: TrainConfig, gen: torch.Generator, z: torch.Tensor | None) -> torch.Tensor:
    negs = torch.randint(1, model.cfg.n_items + 1, (cfg.n_neg,), generator=gen)
    B, k = b["cand"].shape
    cand = torch.cat([b["cand"], negs[None].expand(B, -1)], dim=1)
    foundation = model.cfg.kind == "vista" and z is None
    if foundation:
        z = model.summarize(b["hist"])
    retr, rank = model(b["hist"], cand, _withhold(model, z, cfg.summary_dropout, gen))
    y = b["labels"]
    # retrieval: each clicked candidate against the shared negatives
    pos, neg = retr[:, :k], retr[:, k:]
    lse = torch.logsumexp(torch.cat([pos[..., None], neg[:, None, :].expand(-1, k, -1)], dim=-1), dim=-1)
    clicked = y[..., 0]
    loss = cfg.retrieval_weight * ((lse - pos) * clicked).sum() / clicked.sum().clamp(min=1)
    loss = loss + F.binary_cross_entropy_with_logits(rank[:, :k], y)
    if foundation and cfg.recon_weight > 0:
        loss = loss + cfg.recon_weight * model.recon_loss(z, _recon_targets(b["hist"], cfg.recon_len, gen), negs)
    return loss


def fit(model: Recommender, data: list[dict], cfg: TrainConfig, *, epochs: int, cache: tuple[SummaryCache, str] | None = None, progress: bool = False, label: str = "train") -> list[float]:
    """Train ``model`` (in place) on pre-built batches; with ``cache``, Z comes from the store
    and stage 1 is frozen, with the item embeddings it read (cached Z are means of those embeddings:
    moving them would let candidates drift away from their own summaries). Returns the mean loss per epoch."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for n, p in model.named_parameters() if cache is None or not n.startswith(("summarizer.", "decoder.", "items."))]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    model.train()
    losses = []
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task(f"{label} {cfg.model}", total=epochs * len(data))
        for _ in range(epochs):
            tot = 0.0
            for i in torch.randperm(len(data), generator=gen).tolist():
                b = data[i]
                z = cached_z(*cache, b["users"]) if cache else None
                loss = _loss(model, b, cfg, gen, z)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += loss.item()
                bar.advance(task)
            losses.append(tot / len(data))
    model.eval()
    return losses


def history_chunks(store: EventStore, u: int, stop: int, chunk: int = 65536) -> Iterator[np.ndarray]:
    """A user's events [0, stop) as memory-mapped chunks (never the whole history at once)."""
    for a in range(0, stop, chunk):
        yield store.slice(u, a, min(stop, a + chunk))[0]


def write_summaries(model: Recommender, store: EventStore, users: np.ndarray, cache: SummaryCache, version: str, *, k: int, drop_last: int = 0, progress: bool = False) -> None:
    """Stage 1 over each user's *whole* history (streamed), Z upserted into the cache.

    ``drop_last`` > 0 writes a stale summary: it ignores the user's latest ``drop_last`` events;
    when that is all of them the summary is empty (``n_events`` 0, ``event_ts`` 0).
    """
    rows = []
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task("summaries", total=len(users))
        for u in users:
            stop = max(0, store.length(int(u)) - k - drop_last)
            z = model.summarize_stream(history_chunks(store, int(u), stop))
            event_ts = int(store.slice(int(u), stop - 1, stop)[1][0]) if stop else 0
            rows.append((int(u), version, z.numpy(), event_ts, stop))
            if len(rows) == 256:
                cache.put_many(rows)
                rows = []
            bar.advance(task)
    if rows:
        cache.put_many(rows)


@torch.no_grad()
def evaluate(model: Recommender, store: EventStore, users: np.ndarray, cfg: TrainConfig, *, cache: tuple[SummaryCache, str] | None = None) -> dict[str, Any]:
    """HR@10 / NDCG@10 (each clicked candidate vs ``n_eval_neg`` random items) and per-task AUC.

    With ``cache`` (VISTA), Z is read as serving reads it: a user without a summary is served
    from the recent window and counted (``n_cold_users``; ``n_empty_summaries`` for summaries
    that cover no events). Returns the summary dict and per-user arrays (``per_user``) for paired comparisons.
    """
    rng = np.random.default_rng(cfg.seed + 1)  # the same negatives for every model
    model.eval()
    counts = ServeCounts()
    ranks_u, hr_u, ndcg_u, probs, ys = [], [], [], [], []
    for i in range(0, len(users), cfg.batch_size):
        b = user_batch(store, users[i : i + cfg.batch_size], cfg)
        B, k = b["cand"].shape
        negs = torch.as_tensor(rng.integers(1, store.n_items + 1, size=(B, cfg.n_eval_neg)))
        z = served_z(model, cache[0], cache[1], b["users"].tolist(), counts) if cache else None
        retr, rank = model(b["hist"], torch.cat([b["cand"], negs], dim=1), z)
        retr, y = retr.numpy(), b["labels"].numpy()
        for r in range(B):
            clicked = np.flatnonzero(y[r, :, 0] > 0)
            if len(clicked) == 0:
                continue
            rk = rank_of_positive(retr[r, clicked], np.broadcast_to(retr[r, k:], (len(clicked), cfg.n_eval_neg)))
            h, n = hr_ndcg(rk, 10)
            ranks_u.append(int(b["users"][r]))
            hr_u.append(h.mean())
            ndcg_u.append(n.mean())
        probs.append(torch.sigmoid(rank[:, :k]).reshape(-1, rank.shape[-1]).numpy())
        ys.append(y.reshape(-1, y.shape[-1]))
    P, Y = np.concatenate(probs), np.concatenate(ys)
    hr, hr_ci = float(np.mean(hr_u)) if hr_u else float("nan"), bootstrap_ci(hr_u, seed=cfg.seed)
    nd, nd_ci = float(np.mean(ndcg_u)) if ndcg_u else float("nan"), bootstrap_ci(ndcg_u, seed=cfg.seed)
    return {
        "model": cfg.model, "n_test_users": len(users), "n_users_with_click": len(hr_u), "n_eval_neg": cfg.n_eval_neg,
        "hr@10": hr, "hr@10_ci": hr_ci, "ndcg@10": nd, "ndcg@10_ci": nd_ci,
        **({"n_cold_users": counts.cold, "n_empty_summaries": counts.empty} if cache else {}),
        "tasks": {t: task_metrics(P[:, j], Y[:, j], seed=cfg.seed) for j, t in enumerate(store.tasks)},
        "per_user": {"user": ranks_u, "hr@10": hr_u, "ndcg@10": ndcg_u},
    }
