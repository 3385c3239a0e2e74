"""``rotelab mia run|attacks`` and ``rotelab remind run``: parse, build the config, call the API once, print.

Imports neither torch nor the attacks at module level (``rotelab --help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import BatchOpt, CacheOpts, ModelOpts, RunOpts, SeedOpt, command, emit_run, group
from rotelab.errors import RotelabError

mia_app = group("mia", help="Membership inference attacks, higher score = more member-like ('rotelab mia attacks' lists them).")
remind_app = group("remind", help="REMIND: residual memorization after unlearning, from input loss landscapes.")

EmbOpt = Annotated[Optional[Path], typer.Option("--embedding-model", help="Take neighbour embeddings from this model folder (same tokenizer); lets the target stay query-only.")]


@mia_app.callback()
def _mia() -> None:
    """Membership inference attacks (higher score = more member-like)."""


@remind_app.callback()
def _remind() -> None:
    """REMIND: residual memorization after unlearning."""


@command(mia_app, "run")
def mia_run(
    members: Annotated[Path, typer.Option("--members", help="JSONL of member texts.")],
    nonmembers: Annotated[Path, typer.Option("--nonmembers", help="JSONL of non-member texts.")],
    model: ModelOpts,
    run: RunOpts,
    cache: CacheOpts,
    attacks: Annotated[str, typer.Option("--attacks", help="'all' or a comma list of attacks ('rotelab mia attacks' lists them).")] = "all",
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Reference model folder (same tokenizer) for the 'reference' attack (default: a testbed's reference/).")] = None,
    prefix_pool: Annotated[Optional[Path], typer.Option("--prefix-pool", help="JSONL of known non-members for ReCaLL / Con-ReCaLL prefixes (default: a testbed's splits/prefix_pool.jsonl).")] = None,
    member_prefix_pool: Annotated[Optional[Path], typer.Option("--member-prefix-pool", help="JSONL of known members for Con-ReCaLL, disjoint from --members (default: a testbed's splits/member_prefix_pool.jsonl).")] = None,
    frequency_corpus: Annotated[Optional[Path], typer.Option("--frequency-corpus", help="JSONL of reference text for DC-PDD's token frequencies, disjoint from both sets (default: a testbed's non-member text minus the scored texts).")] = None,
    embedding_model: EmbOpt = None,
    neighbour_model: Annotated[Optional[Path], typer.Option("--neighbour-model", help="Local masked-LM folder (BERT, RoBERTa, ...): Neighbourhood neighbours as in the paper (default: embedding-neighbour swaps).")] = None,
    k: Annotated[float, typer.Option("--k", help="Min-K% / Min-K%++ share of lowest tokens.")] = 0.2,
    neighbours: Annotated[int, typer.Option("--neighbours", help="Neighbourhood: neighbours per text (K).")] = 16,
    swap_rate: Annotated[float, typer.Option("--swap-rate", help="Neighbourhood, embedding swaps: swap probability p.")] = 0.1,
    rank: Annotated[int, typer.Option("--rank", help="Neighbourhood, embedding swaps: j-th nearest embedding neighbour.")] = 1,
    recall_shots: Annotated[int, typer.Option("--recall-shots", help="ReCaLL / Con-ReCaLL: pool passages offered as whole prefix shots (the longest dropped until they fit).")] = 4,
    conrecall_gamma: Annotated[float, typer.Option("--conrecall-gamma", help="Con-ReCaLL: weight gamma of the member-prefix log-likelihood.")] = 0.5,
    gradnorm_p: Annotated[str, typer.Option("--gradnorm-p", help="GradNorm: per-tensor norm, 1 | 2 | inf (MIMIR's default).")] = "inf",
    dcpdd_a: Annotated[float, typer.Option("--dcpdd-a", help="DC-PDD: cap a on each token's calibrated probability.")] = 0.01,
    samia_samples: Annotated[int, typer.Option("--samia-samples", help="SaMIA: sampled continuations per text.")] = 10,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 32,
):
    """Score members and non-members with every chosen attack; ROC, AUC with CIs, TPR at low FPR."""
    from rotelab.membership.api import mia
    from rotelab.membership.context import MIAConfig

    cfg = MIAConfig(k=k, n_neighbours=neighbours, swap_rate=swap_rate, rank=rank, recall_shots=recall_shots, conrecall_gamma=conrecall_gamma,
                    gradnorm_p=gradnorm_p, dcpdd_a=dcpdd_a, samia_samples=samia_samples, batch_size=batch_size, seed=seed)
    out = run.out_dir("mia run")
    result = mia(model.path, members, nonmembers, attacks=attacks, out=out, config=cfg, reference=reference, prefix_pool=prefix_pool,
                 member_prefix_pool=member_prefix_pool, frequency_corpus=frequency_corpus, embedding_model=embedding_model, neighbour_model=neighbour_model,
                 load=model.load_options(), cache=cache.open(), overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


@mia_app.command("attacks")
def mia_attacks(json_out: Annotated[bool, typer.Option("--json", help="Print the list as one JSON document.")] = False):
    """List the registered attacks: access level, extra passes, resources, description."""
    import json

    from rotelab.membership.attacks import ATTACKS

    rows = [{"name": a.name, "needs": a.needs.name.lower(), "single_pass": a.single_pass, "requires": list(a.requires), "doc": a.doc} for a in ATTACKS.values()]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        extra = "single pass" if r["single_pass"] else "extra passes"
        needs = f"; requires {', '.join(r['requires'])}" if r["requires"] else ""
        typer.echo(f"{r['name']:14s} {r['needs']:10s} {extra}{needs}. {r['doc']}")


@command(remind_app, "run")
def remind_run(
    retain: Annotated[Path, typer.Option("--retain", help="JSONL of retained (trained, kept) texts.")],
    forget: Annotated[Path, typer.Option("--forget", help="JSONL of forgotten (unlearned) texts.")],
    holdout: Annotated[Path, typer.Option("--holdout", help="JSONL of never-trained texts.")],
    model: ModelOpts,
    run: RunOpts,
    cache: CacheOpts,
    paraphrases: Annotated[Optional[Path], typer.Option("--paraphrases", help="JSONL of paraphrases with a 'split' field (forget | retain | holdout): reported as their own row (default: a testbed's paraphrases of the evaluated samples).")] = None,
    embedding_model: EmbOpt = None,
    variants: Annotated[int, typer.Option("--variants", help="K variants per (rank, rate) setting.")] = 8,
    ranks: Annotated[str, typer.Option("--ranks", help="Neighbour ranks j, comma list.")] = "1,2,4,8",
    base_rate: Annotated[float, typer.Option("--swap-rate", help="Base swap probability p.")] = 0.1,
    folds: Annotated[int, typer.Option("--folds", help="Stratified CV folds.")] = 5,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 64,
):
    """Classify retained / forgotten / holdout from input loss landscapes; baselines on the same folds."""
    from rotelab.membership.remind.api import remind
    from rotelab.membership.remind.landscape import ProbeConfig
    from rotelab.membership.remind.suite import RemindConfig

    try:
        js = tuple(int(x) for x in ranks.split(","))
    except ValueError:
        raise RotelabError(f"--ranks must be a comma list of integers; got '{ranks}'") from None
    cfg = RemindConfig(probe=ProbeConfig(ranks=js, base_rate=base_rate, k=variants, seed=seed), folds=folds, batch_size=batch_size, seed=seed)
    out = run.out_dir("remind run")
    result = remind(model.path, retain, forget, holdout, paraphrases=paraphrases, out=out, config=cfg, embedding_model=embedding_model,
                    load=model.load_options(), cache=cache.open(), overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)
