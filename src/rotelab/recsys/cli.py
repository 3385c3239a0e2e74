"""``rotelab recsys``: synth, train, bench -- thin commands over :mod:`rotelab.recsys.api`."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli_common import RunOpts, SeedOpt, command, emit_run, group
from rotelab.errors import RotelabError
from rotelab.recsys.config import BenchConfig, SynthConfig, TrainConfig

app = group("recsys", help="Recommendation over lifelong user histories at fixed serving cost (VISTA).")

_SYNTH, _TRAIN, _BENCH = SynthConfig(), TrainConfig(), BenchConfig()


class Kind(str, Enum):
    vista = "vista"
    full = "full"
    recent = "recent"


class Fmt(str, Enum):
    kuairand = "kuairand"
    ml_1m = "ml-1m"
    ml_20m = "ml-20m"


class CacheDtype(str, Enum):
    int8 = "int8"
    fp32 = "fp32"


UsersOpt = Annotated[int, typer.Option("--users", help="Regular synthetic users.")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Foundation epochs (baselines get epochs + downstream epochs).")]


def _lengths(option: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(float(x)) for x in text.split(",") if x.strip())
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated integers (e.g. 1e5,1e6); got {text!r}") from None


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


@command(app, "synth")
def synth(
    run: RunOpts,
    users: UsersOpt = _SYNTH.n_users,
    items: Annotated[int, typer.Option("--items", help="Catalogue size.")] = _SYNTH.n_items,
    clusters: Annotated[int, typer.Option("--clusters", help="Topics (interests); items / clusters items each.")] = _SYNTH.n_clusters,
    min_len: Annotated[int, typer.Option("--min-len", help="Shortest regular history.")] = _SYNTH.min_len,
    max_len: Annotated[int, typer.Option("--max-len", help="Longest regular history.")] = _SYNTH.max_len,
    lifelong: Annotated[str, typer.Option("--lifelong", help="Extra users with exactly these history lengths, comma-separated.")] = _csv(_SYNTH.lifelong_lens),
    fmt: Annotated[Fmt, typer.Option("--format", help="File format written.")] = Fmt(_SYNTH.fmt),
    seed: SeedOpt = _SYNTH.seed,
):
    """Write seeded synthetic lifelong users with planted long-range interests (real file formats)."""
    from rotelab.recsys import api

    cfg = replace(_SYNTH, n_users=users, n_items=items, n_clusters=clusters, min_len=min_len, max_len=max_len,
                  lifelong_lens=_lengths("--lifelong", lifelong), fmt=fmt.value, seed=seed)
    out = run.out_dir("recsys synth")
    emit_run(api.synth(out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "train")
def train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Folder with ratings.dat (ML-1M), ratings.csv (ML-20M) or log_standard*.csv (KuaiRand).")],
    run: RunOpts,
    model: Annotated[Kind, typer.Option("--model", help="vista | full | recent.")] = Kind(_TRAIN.model),
    epochs: EpochsOpt = _TRAIN.epochs,
    downstream_epochs: Annotated[int, typer.Option("--downstream-epochs", help="VISTA stage-2 epochs on cached summaries.")] = _TRAIN.downstream_epochs,
    max_len: Annotated[int, typer.Option("--max-len", help="History events a model reads in training.")] = _TRAIN.max_len,
    seeds: Annotated[int, typer.Option("--summary-tokens", help="VISTA summary tokens S.")] = _TRAIN.n_seeds,
    dim: Annotated[int, typer.Option("--dim", help="Embedding size d (divisible by 2 heads).")] = _TRAIN.d,
    candidates: Annotated[int, typer.Option("--candidates", help="Last events per user used as logged candidates.")] = _TRAIN.k,
    cache_dtype: Annotated[CacheDtype, typer.Option("--cache-dtype", help="Summary values in the cache.")] = CacheDtype(_TRAIN.cache_dtype),
    summary_dropout: Annotated[float, typer.Option("--summary-dropout", help="VISTA: share of training examples without their summary, so cold users are served well from the recent window.")] = _TRAIN.summary_dropout,
    seed: SeedOpt = _TRAIN.seed,
):
    """Train one model (full target attention, recent-only, or VISTA with its summary cache) and evaluate it."""
    from rotelab.recsys import api

    cfg = replace(_TRAIN, model=model.value, epochs=epochs, downstream_epochs=downstream_epochs, max_len=max_len, n_seeds=seeds, d=dim,
                  k=candidates, cache_dtype=cache_dtype.value, summary_dropout=summary_dropout, seed=seed)
    out = run.out_dir("recsys train")
    emit_run(api.train(data, out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "bench")
def bench(
    run: RunOpts,
    users: UsersOpt = _BENCH.synth.n_users,
    epochs: EpochsOpt = _BENCH.train.epochs,
    lifelong: Annotated[str, typer.Option("--lengths", help="History lengths timed for serving, comma-separated.")] = _csv(_BENCH.synth.lifelong_lens),
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed requests per latency point.")] = _BENCH.serve_min_time_s,
    seed: SeedOpt = _BENCH.train.seed,
):
    """Quality (VISTA vs full vs recent), serving latency/memory vs history length, cache ablations, fallbacks."""
    from rotelab.recsys import api

    cfg = replace(_BENCH, serve_min_time_s=min_time, synth=replace(_BENCH.synth, n_users=users, lifelong_lens=_lengths("--lengths", lifelong), seed=seed),
                  train=replace(_BENCH.train, epochs=epochs, seed=seed))
    out = run.out_dir("recsys bench")
    emit_run(api.bench(out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)
