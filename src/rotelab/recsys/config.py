"""The configurations of ``recsys synth|train|bench`` and their checks (standard library only, so
the command line reads its defaults from here without importing numpy or torch).

Each ``check_*`` raises a one-line :class:`RotelabError` naming the option (the command-line
spelling where there is one) and the value; the API calls it before any run folder exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from rotelab.errors import RotelabError

FORMATS = ("kuairand", "ml-1m", "ml-20m")
KINDS = ("vista", "full", "recent")
CACHE_DTYPES = ("int8", "fp32")


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic lifelong users (see :mod:`rotelab.recsys.synth`)."""

    n_users: int = 600
    n_items: int = 300
    n_clusters: int = 100
    min_len: int = 600  # regular users: history length log-uniform in [min_len, max_len]
    max_len: int = 1500
    lifelong_lens: tuple[int, ...] = (100_000, 1_000_000)  # extra users with exactly these lengths
    n_old: int = 3
    n_current: int = 2
    gap: int = 512  # the last `gap` events hold the current topics; must exceed the recent window
    p_signal: float = 0.4
    k: int = 16  # logged candidates per user
    zipf: float = 1.1
    fmt: str = "kuairand"  # kuairand | ml-1m | ml-20m
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """One model's training and evaluation (see :mod:`rotelab.recsys.train`)."""

    model: str = "vista"
    d: int = 32
    heads: int = 2
    n_seeds: int = 256  # S summary tokens: enough that few items share a seed slot (see models.Summarizer)
    recent: int = 256
    max_len: int = 4096  # history events a model reads in training (full attention's cost cap)
    k: int = 16  # logged candidates per user
    cuts: int = 4  # training examples per user: cut points of the history
    cut_stride: int = 48  # events between cut points
    test_frac: float = 0.2
    epochs: int = 6  # foundation epochs; baselines get epochs + downstream_epochs
    downstream_epochs: int = 2
    batch_size: int = 16
    lr: float = 3e-3
    n_neg: int = 32
    n_eval_neg: int = 100
    recon_weight: float = 0.5
    retrieval_weight: float = 1.0
    recon_len: int = 64
    # VISTA: share of training examples whose summary is withheld, so that the scorer also learns to
    # serve a cold user or an empty summary from the recent window. Off by default: on the bench
    # (seed 0) 0.1 lifts such users' HR@10 from 0.20 to 0.50 (the recent-only model's 0.50) but costs
    # warm users HR@10 0.922 -> 0.908 and is_like AUC 0.76 -> 0.66 (the long-range task)
    summary_dropout: float = 0.0
    cache_dtype: str = "int8"
    seed: int = 0


@dataclass(frozen=True)
class BenchConfig:
    """``recsys bench``: the data, the training of all three models, and the serving measurement."""

    synth: SynthConfig = field(default_factory=lambda: SynthConfig(n_users=300, n_items=300, n_clusters=100, min_len=600, max_len=1000, p_signal=0.5, lifelong_lens=(1_000, 10_000, 100_000, 1_000_000)))
    # 10 + 2 epochs: at 1 epoch (the earlier measurement) every model was near chance; full
    # attention needs ~8 epochs on 240 train users to read topic frequencies (loss curves in bench.json)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, downstream_epochs=2, batch_size=16, lr=3e-3, n_neg=32))
    stale_events: tuple[int, ...] = (256, 1024)  # summaries that miss the user's latest events
    n_cand: int = 100  # candidates per serving request
    serve_min_time_s: float = 2.0  # timed requests per latency point run at least this long
    isolate: bool = True  # each latency point in a fresh interpreter (peak memory is then its own)


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise RotelabError(f"{name} must be >= {low:g}; got {value!r}")


def _one_of(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise RotelabError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def check_synth(cfg: SynthConfig, *, recent: int = TrainConfig.recent, lifelong_option: str = "--lifelong") -> SynthConfig:
    """The generator's preconditions: old interests (the first half of a history) must lie beyond
    the ``recent`` window, and every user needs its topics."""
    for name, v in (("--users", cfg.n_users), ("--items", cfg.n_items), ("--clusters", cfg.n_clusters), ("n_old", cfg.n_old), ("n_current", cfg.n_current), ("k", cfg.k)):
        _at_least(name, v, 1)
    need = 2 * (recent + cfg.k) + 1
    if cfg.min_len < need or cfg.max_len < cfg.min_len:
        raise RotelabError(f"--min-len must be >= {need} and <= --max-len; got --min-len {cfg.min_len}, --max-len {cfg.max_len}")
    if cfg.n_clusters < cfg.n_old + cfg.n_current or cfg.n_items < cfg.n_clusters:
        raise RotelabError(f"--clusters must be >= {cfg.n_old + cfg.n_current} and <= --items; got {cfg.n_clusters} (items {cfg.n_items})")
    if any(n < 32 for n in cfg.lifelong_lens):
        raise RotelabError(f"{lifelong_option} lengths must be >= 32; got {','.join(map(str, cfg.lifelong_lens))}")
    if not recent < cfg.gap:
        raise RotelabError(f"gap must exceed the recent window ({recent}); got {cfg.gap}")
    if not 0 < cfg.p_signal <= 1:
        raise RotelabError(f"p_signal must be in (0, 1]; got {cfg.p_signal}")
    _one_of("--format", cfg.fmt, FORMATS)
    return cfg


def check_train(cfg: TrainConfig) -> TrainConfig:
    """Every training option in range (``model`` one of vista, full, recent)."""
    _one_of("--model", cfg.model, KINDS)
    _one_of("--cache-dtype", cfg.cache_dtype, CACHE_DTYPES)
    for name, v in (("--epochs", cfg.epochs), ("--max-len", cfg.max_len), ("--summary-tokens", cfg.n_seeds), ("--candidates", cfg.k),
                    ("heads", cfg.heads), ("recent", cfg.recent), ("cuts", cfg.cuts), ("batch_size", cfg.batch_size), ("n_neg", cfg.n_neg),
                    ("n_eval_neg", cfg.n_eval_neg), ("recon_len", cfg.recon_len)):
        _at_least(name, v, 1)
    for name, v in (("--downstream-epochs", cfg.downstream_epochs), ("cut_stride", cfg.cut_stride), ("recon_weight", cfg.recon_weight), ("retrieval_weight", cfg.retrieval_weight)):
        _at_least(name, v, 0)
    if cfg.d < cfg.heads or cfg.d % cfg.heads:
        raise RotelabError(f"--dim must be a positive multiple of the {cfg.heads} attention heads; got {cfg.d}")
    if not 0 <= cfg.summary_dropout < 1:
        raise RotelabError(f"--summary-dropout must be in [0, 1); got {cfg.summary_dropout}")
    if not 0 < cfg.test_frac < 1:
        raise RotelabError(f"test_frac must be in (0, 1); got {cfg.test_frac}")
    if not cfg.lr > 0:
        raise RotelabError(f"lr must be > 0; got {cfg.lr}")
    return cfg


def check_bench(cfg: BenchConfig) -> BenchConfig:
    check_train(cfg.train)
    check_synth(cfg.synth, recent=cfg.train.recent, lifelong_option="--lengths")
    if not cfg.synth.lifelong_lens:
        raise RotelabError("--lengths must name at least one history length to time")
    if cfg.synth.k != cfg.train.k:
        raise RotelabError(f"the synthetic candidates per user (k {cfg.synth.k}) must equal the trained ones (k {cfg.train.k})")
    _at_least("n_cand", cfg.n_cand, 1)
    for s in cfg.stale_events:
        _at_least("stale_events", s, 1)
    if not cfg.serve_min_time_s > 0:
        raise RotelabError(f"--min-time must be > 0; got {cfg.serve_min_time_s}")
    return cfg
