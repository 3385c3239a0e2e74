"""``rotelab mia run`` and ``rotelab remind run``: validate inputs, open the run, call the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import (
    group,
    BatchOpt, CacheOpt, DeviceOpt, DtypeOpt, JsonOpt, LongTextOpt, ModelOpt, NoCacheOpt, OutOpt,
    PickleOpt, QuietOpt, RemoteCodeOpt, SeedOpt, finish, open_cache, open_model, open_run,
)
from rotelab.errors import RotelabError

mia_app = group("mia", help="Membership inference: loss, zlib, lowercase, reference, Min-K%, Min-K%++, neighbourhood, GradNorm, ReCaLL.")
remind_app = group("remind", help="REMIND: residual memorization after unlearning, from input loss landscapes.")

RefOpt = Annotated[Optional[Path], typer.Option("--reference", help="Reference model folder (same tokenizer) for the 'reference' attack.")]


@mia_app.callback()
def _mia() -> None:
    """Membership inference attacks (higher score = more member-like)."""


@remind_app.callback()
def _remind() -> None:
    """REMIND: residual memorization after unlearning."""


EmbOpt = Annotated[Optional[Path], typer.Option("--embedding-model", help="Take neighbour embeddings from this model folder (same tokenizer); lets the target stay query-only.")]


def _no_overlap(a: list, b: list, what: str) -> None:
    common = {s.text for s in a} & {s.text for s in b}
    if common:
        raise RotelabError(f"{what}: {len(common)} texts appear in both (e.g. '{next(iter(common))[:60]}')")


@mia_app.command("run")
def mia_run(
    model: ModelOpt,
    members: Annotated[Path, typer.Option("--members", help="JSONL of member texts.")],
    nonmembers: Annotated[Path, typer.Option("--nonmembers", help="JSONL of non-member texts.")],
    attacks: Annotated[str, typer.Option("--attacks", help="'all' or a comma list of attack ids.")] = "all",
    reference: RefOpt = None,
    prefix_pool: Annotated[Optional[Path], typer.Option("--prefix-pool", help="JSONL of known non-members for ReCaLL prefixes (default: a testbed's splits/prefix_pool.jsonl).")] = None,
    embedding_model: EmbOpt = None,
    k: Annotated[float, typer.Option("--k", help="Min-K% / Min-K%++ share of lowest tokens.")] = 0.2,
    neighbours: Annotated[int, typer.Option("--neighbours", help="Neighbourhood: variants per text (K).")] = 16,
    swap_rate: Annotated[float, typer.Option("--swap-rate", help="Neighbourhood: swap probability p.")] = 0.1,
    rank: Annotated[int, typer.Option("--rank", help="Neighbourhood: j-th nearest embedding neighbour.")] = 1,
    out: OutOpt = None,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 32,
    long_text: LongTextOpt = "truncate",
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Score members and non-members with every chosen attack; ROC, AUC with CIs, TPR at low FPR."""
    from rotelab.core.data import read_jsonl
    from rotelab.membership.attacks import resolve_attacks
    from rotelab.membership.context import MIAConfig
    from rotelab.membership.suite import check_access, run_mia

    names = resolve_attacks(attacks)
    cfg = MIAConfig(k=k, n_neighbours=neighbours, swap_rate=swap_rate, rank=rank, batch_size=batch_size, seed=seed)
    cfg.validate()
    mem, non = read_jsonl(members), read_jsonl(nonmembers)
    _no_overlap(mem, non, "--members and --nonmembers")
    if "reference" in names and reference is None:
        raise RotelabError("attack 'reference' needs --reference (a model folder with the same tokenizer); or leave it out of --attacks")
    pool = None
    if "recall" in names:
        if prefix_pool is None and (model / "splits" / "prefix_pool.jsonl").exists():
            prefix_pool = model / "splits" / "prefix_pool.jsonl"
        if prefix_pool is None:
            raise RotelabError("attack 'recall' needs --prefix-pool (JSONL of known non-members, disjoint from both sets); or leave it out of --attacks")
        pool_s = read_jsonl(prefix_pool)
        _no_overlap(pool_s, mem + non, "--prefix-pool and the evaluated sets")
        pool = [s.text for s in pool_s]
    lm = open_model(model, device=device, dtype=dtype, long_text=long_text, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    check_access(lm, names)
    ref = open_model(reference, device=device, dtype=dtype, long_text=long_text, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle) if reference else None
    run = open_run(out, "mia run", dict(model=model, members=members, nonmembers=nonmembers, attacks=names, reference=reference, prefix_pool=prefix_pool, embedding_model=embedding_model, k=k, neighbours=neighbours, swap_rate=swap_rate, rank=rank, batch_size=batch_size, long_text=long_text, dtype=dtype), seed=seed)
    run.add_input("members", members)
    run.add_input("nonmembers", nonmembers)
    result = run_mia(lm, mem, non, run, names, config=cfg, reference=ref, prefix_texts=pool, embedding_from=embedding_model, cache=open_cache(cache_dir, no_cache), progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)


@remind_app.command("run")
def remind_run(
    model: ModelOpt,
    retain: Annotated[Path, typer.Option("--retain", help="JSONL of retained (trained, kept) texts.")],
    forget: Annotated[Path, typer.Option("--forget", help="JSONL of forgotten (unlearned) texts.")],
    holdout: Annotated[Path, typer.Option("--holdout", help="JSONL of never-trained texts.")],
    paraphrases: Annotated[Optional[Path], typer.Option("--paraphrases", help="JSONL of paraphrases with a 'split' field (forget | retain | holdout): reported as their own row.")] = None,
    embedding_model: EmbOpt = None,
    variants: Annotated[int, typer.Option("--variants", help="K variants per (rank, rate) setting.")] = 8,
    ranks: Annotated[str, typer.Option("--ranks", help="Neighbour ranks j, comma list.")] = "1,2,4,8",
    base_rate: Annotated[float, typer.Option("--swap-rate", help="Base swap probability p.")] = 0.1,
    folds: Annotated[int, typer.Option("--folds", help="Stratified CV folds.")] = 5,
    out: OutOpt = None,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 64,
    long_text: LongTextOpt = "truncate",
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Classify retained / forgotten / holdout from input loss landscapes; baselines on the same folds."""
    from rotelab.core.data import read_jsonl
    from rotelab.membership.landscape import ProbeConfig
    from rotelab.membership.remind import STATES, RemindConfig, run_remind

    try:
        js = tuple(int(x) for x in ranks.split(","))
    except ValueError:
        raise RotelabError(f"--ranks must be a comma list of integers; got '{ranks}'") from None
    if not js or min(js) < 1 or variants < 1 or folds < 2 or not 0 < base_rate <= 1:
        raise RotelabError(f"need --ranks >= 1, --variants >= 1, --folds >= 2, --swap-rate in (0, 1]; got {ranks}, {variants}, {folds}, {base_rate}")
    sets = dict(zip(STATES, (read_jsonl(retain), read_jsonl(forget), read_jsonl(holdout))))
    for st, rows in sets.items():
        if len(rows) < folds:
            raise RotelabError(f"--{ {'retained': 'retain', 'forgotten': 'forget'}.get(st, st)}: {len(rows)} texts < --folds {folds}")
    _no_overlap(sets["forgotten"], sets["holdout"], "--forget and --holdout")
    para = None
    if paraphrases is not None:
        rows = read_jsonl(paraphrases)
        bad = [s.id for s in rows if s.meta.get("split") not in ("forget", "retain", "holdout")]
        if bad:
            raise RotelabError(f"{paraphrases}: row '{bad[0]}' needs a 'split' field: forget | retain | holdout")
        para = {st: [s for s in rows if s.meta["split"] == sp] for st, sp in zip(STATES, ("retain", "forget", "holdout"))}
    lm = open_model(model, device=device, dtype=dtype, long_text=long_text, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    cfg = RemindConfig(probe=ProbeConfig(ranks=js, base_rate=base_rate, k=variants, seed=seed), folds=folds, batch_size=batch_size, seed=seed)
    run = open_run(out, "remind run", dict(model=model, retain=retain, forget=forget, holdout=holdout, paraphrases=paraphrases, embedding_model=embedding_model, variants=variants, ranks=js, swap_rate=base_rate, folds=folds, batch_size=batch_size, long_text=long_text, dtype=dtype), seed=seed)
    for name, p in (("retain", retain), ("forget", forget), ("holdout", holdout)):
        run.add_input(name, p)
    result = run_remind(lm, sets, run, config=cfg, paraphrases=para, embedding_from=embedding_model, cache=open_cache(cache_dir, no_cache), progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)
