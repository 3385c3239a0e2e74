"""``rotelab recsys``: synth, train, bench -- thin commands over :mod:`rotelab.recsys`."""

from __future__ import annotations

from dataclasses import asdict, replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from rotelab.cli_common import group, JsonOpt, OutOpt, QuietOpt, SeedOpt, finish, open_run
from rotelab.errors import RotelabError

app = group("recsys", help="Recommendation over lifelong user histories at fixed serving cost (VISTA).")


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


RECENT = 256  # the recent-only window of every model
UsersOpt = Annotated[int, typer.Option("--users", help="Regular synthetic users.")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Foundation epochs (baselines get epochs + downstream epochs).")]


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise RotelabError(f"{name} must be >= 1; got {value}")


def _lengths(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(float(x)) for x in text.split(",") if x.strip())
    except ValueError:
        raise RotelabError(f"--lifelong must be comma-separated integers (e.g. 1e5,1e6); got {text!r}") from None
    if any(n < 32 for n in out):
        raise RotelabError(f"--lifelong lengths must be >= 32; got {text!r}")
    return out


@app.command()
def synth(
    out: OutOpt = None,
    users: UsersOpt = 600,
    items: Annotated[int, typer.Option("--items", help="Catalogue size.")] = 300,
    clusters: Annotated[int, typer.Option("--clusters", help="Topics (interests); items / clusters items each.")] = 100,
    min_len: Annotated[int, typer.Option("--min-len", help="Shortest regular history.")] = 600,
    max_len: Annotated[int, typer.Option("--max-len", help="Longest regular history.")] = 1500,
    lifelong: Annotated[str, typer.Option("--lifelong", help="Extra users with exactly these history lengths, comma-separated.")] = "100000,1000000",
    fmt: Annotated[Fmt, typer.Option("--format", help="File format written.")] = Fmt.kuairand,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Write seeded synthetic lifelong users with planted long-range interests (real file formats)."""
    from rotelab.recsys.synth import SynthConfig, write_synthetic

    for name, v in (("--users", users), ("--items", items), ("--clusters", clusters)):
        _positive(name, v)
    cfg = SynthConfig(n_users=users, n_items=items, n_clusters=clusters, min_len=min_len, max_len=max_len, lifelong_lens=_lengths(lifelong), fmt=fmt.value, seed=seed)
    need = 2 * (RECENT + cfg.k) + 1  # old interests (first half) must lie beyond the recent window
    if min_len < need or max_len < min_len:
        raise RotelabError(f"--min-len must be >= {need} and <= --max-len; got --min-len {min_len}, --max-len {max_len}")
    if clusters < cfg.n_old + cfg.n_current or items < clusters:
        raise RotelabError(f"--clusters must be >= {cfg.n_old + cfg.n_current} and <= --items; got {clusters} (items {items})")
    run = open_run(out, "recsys synth", asdict(cfg), seed=seed)
    path = write_synthetic(run.path, cfg, progress=not quiet)
    finish(run, {"file": str(path), "format": cfg.fmt, "n_users": cfg.n_users + len(cfg.lifelong_lens)}, as_json=json_out, quiet=quiet)


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", "-d", help="Folder with ratings.dat (ML-1M), ratings.csv (ML-20M) or log_standard*.csv (KuaiRand).")],
    model: Annotated[Kind, typer.Option("--model", help="vista | full | recent.")] = Kind.vista,
    out: OutOpt = None,
    epochs: EpochsOpt = 6,
    downstream_epochs: Annotated[int, typer.Option("--downstream-epochs", help="VISTA stage-2 epochs on cached summaries.")] = 2,
    max_len: Annotated[int, typer.Option("--max-len", help="History events a model reads in training.")] = 4096,
    seeds: Annotated[int, typer.Option("--summary-tokens", help="VISTA summary tokens S.")] = 256,
    dim: Annotated[int, typer.Option("--dim", help="Embedding size d (divisible by 2 heads).")] = 32,
    candidates: Annotated[int, typer.Option("--candidates", help="Last events per user used as logged candidates.")] = 16,
    cache_dtype: Annotated[CacheDtype, typer.Option("--cache-dtype", help="Summary values in the cache.")] = CacheDtype.int8,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Train one model (full target attention, recent-only, or VISTA with its summary cache) and evaluate it."""
    from rotelab.recsys.events import detect_format
    from rotelab.recsys.pipeline import prepare_store, train_model
    from rotelab.recsys.train import TrainConfig

    _, log_file = detect_format(data)
    for name, v in (("--epochs", epochs), ("--max-len", max_len), ("--summary-tokens", seeds), ("--candidates", candidates)):
        _positive(name, v)
    if dim < 2 or dim % 2:
        raise RotelabError(f"--dim must be even and >= 2; got {dim}")
    cfg = TrainConfig(model=model.value, epochs=epochs, downstream_epochs=downstream_epochs, max_len=max_len, n_seeds=seeds, d=dim, k=candidates, cache_dtype=cache_dtype.value, batch_size=16, lr=3e-3, n_neg=32, seed=seed)  # as in recsys bench
    run = open_run(out, "recsys train", asdict(cfg) | {"data": data}, seed=seed)
    run.add_input("data", log_file)
    store = prepare_store(run, data)
    result = train_model(run, store, cfg, progress=not quiet)
    finish(run, {k: v for k, v in result.items() if k != "config"}, as_json=json_out, quiet=quiet)


@app.command()
def bench(
    out: OutOpt = None,
    users: UsersOpt = 300,
    epochs: EpochsOpt = 6,
    lifelong: Annotated[str, typer.Option("--lengths", help="History lengths timed for serving, comma-separated.")] = "1000,10000,100000,1000000",
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed requests per latency point.")] = 2.0,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Quality (VISTA vs full vs recent), serving latency/memory vs history length, cache ablations."""
    from rotelab.recsys.bench import BenchConfig, run_bench

    _positive("--users", users)
    _positive("--epochs", epochs)
    if min_time <= 0:
        raise RotelabError(f"--min-time must be > 0; got {min_time}")
    base = BenchConfig(serve_min_time_s=min_time)
    cfg = replace(base, synth=replace(base.synth, n_users=users, lifelong_lens=_lengths(lifelong), seed=seed), train=replace(base.train, epochs=epochs, seed=seed))
    run = open_run(out, "recsys bench", asdict(cfg), seed=seed)
    result = run_bench(run, cfg, progress=not quiet)
    finish(run, {k: result[k] for k in ("quality", "ablation", "serving", "latency_growth_first_to_last")}, as_json=json_out, quiet=quiet)
