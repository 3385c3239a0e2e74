"""ReCaLL (Xie et al. 2024): LL(x | P) / LL(x) with P a prefix of whole shots, known non-members
(``--prefix-pool``; a testbed ships one in ``splits/prefix_pool.jsonl``).

The prefix is built of whole shots, as the reference code does (ruoyuxie/recall and MIMIR's
``process_prefix`` drop shots until the prefix fits; they never cut one). The first
``--recall-shots`` pool passages are offered; for each target, the longest are dropped until the
rest fit beside the whole target in the context (:func:`fit_shots`), so every text keeps as
many whole shots as fit. The reference code instead sizes one prefix for the average target
length (``prefix[-max_shots:]``), which overflows the context for longer targets. A target that
does not fit beside even the shortest shot is cut to fit beside that shot, and counted: the
number of shots and of target tokens actually used is recorded in ``metrics.json`` and in the
manifest's notes, with a warning when any target was cut.

LL is the mean log-likelihood over the same tokens in both terms: tokens 2..n of x (of its kept
part), i.e. the tokens the signal pass scores. The reference code's conditional LL also counts
x's first token (predicted from the prefix's last one); rotelab leaves it out of both, so that the
ratio compares the same tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from rotelab.errors import RotelabError
from rotelab.membership.attacks import register_attack

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel
    from rotelab.membership.context import AttackContext


def recall_score(ll: float, ll_prefixed: float) -> float:
    """ReCaLL (Xie et al. 2024): LL(x | P) / LL(x), LL = mean log-likelihood (negative), P = known
    non-member prefix. Members lose more likelihood under a non-member prefix: ratio > 1."""
    return ll_prefixed / min(ll, -1e-8)


def fit_shots(lengths: Sequence[int], n: int, context: int) -> tuple[list[int], int]:
    """Which whole shots go before a target of ``n`` tokens (its BOS included), and how many of
    the target's tokens are kept, in a context of ``context`` tokens.

    The longest shots are dropped first (of equal lengths, the later one) until the rest fit
    beside the whole target: the most shots that fit. When not even the shortest fits, it is kept
    and the target is cut to ``context - len(shortest)`` tokens. Shots keep their pool order.

    >>> fit_shots([30, 10, 20], 50, 80)  # 60 + 50 > 80: drop the 30-token shot
    ([1, 2], 50)
    >>> fit_shots([30, 10, 20], 75, 80)  # no shot fits beside 75 tokens: the shortest, target cut to 70
    ([1], 70)
    """
    kept, total = [], 0
    for i in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        if total + lengths[i] + n > context:
            break
        kept.append(i)
        total += lengths[i]
    if kept:
        return sorted(kept), n
    shortest = min(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [shortest], context - lengths[shortest]


def shot_ids(lm: "LanguageModel", texts: Sequence[str]) -> list[list[int]]:
    """Each shot's tokens, as it reads inside a prefix: a leading space, no BOS."""
    bos = len(lm.bos_ids)
    return [ids[bos:] for ids in lm.tokenize([" " + t for t in texts])]


def pool_shots(ctx: "AttackContext", resource: str) -> list[list[int]]:
    """The first ``recall_shots`` passages of a prefix pool, tokenized (memoised per pool)."""
    texts = ctx.resource(resource)[: ctx.config.recall_shots]
    return ctx.memo(("shots", resource), lambda: shot_ids(ctx.lm, texts))


def check_pools(ctx: "AttackContext", resources: Sequence[str]) -> None:
    """Refuse a pool whose shortest offered shot leaves no target token in the context."""
    from rotelab.membership.context import RESOURCES

    L = ctx.lm.max_length
    for r in resources:
        n = min(len(s) for s in pool_shots(ctx, r))
        if n + 2 > L:
            raise RotelabError(
                f"{RESOURCES[r].option}: the shortest of its first {ctx.config.recall_shots} passages has {n} tokens, which leaves no target "
                f"token in the model's {L}-token context; pass shorter passages"
            )


def prefixed_lls(ctx: "AttackContext", pools: dict[str, str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """LL(x | P_pool) per pool (label -> resource) and LL(x), each the mean log-lik over the same
    kept tokens 2..n of x; records the shots and target tokens used.

    With several pools (Con-ReCaLL), a target cut for one pool is cut to the same length for all.
    """
    lm, L = ctx.lm, ctx.lm.max_length
    bos = len(lm.bos_ids)
    shots = {label: pool_shots(ctx, res) for label, res in pools.items()}
    lengths = {label: [len(s) for s in sh] for label, sh in shots.items()}
    keep = [min(fit_shots(lengths[label], len(s.token_ids), L)[1] for label in pools) for s in ctx.signals]  # target tokens kept
    seqs: dict[str, list[list[int]]] = {label: [] for label in pools}
    used: dict[str, list[int]] = {label: [] for label in pools}
    for s, n in zip(ctx.signals, keep):
        x = s.token_ids[:n].tolist()
        for label in pools:
            chosen, _ = fit_shots(lengths[label], n, L)
            seqs[label].append(x[:bos] + [t for i in chosen for t in shots[label][i]] + x[bos:])
            used[label].append(len(chosen))
    lls = {label: np.array([float(lp[-(n - 1):].mean()) for lp, n in zip(ctx.logp_pass(label, seqs[label]), keep)]) for label in pools}
    plain = np.array([float(s.logp[: n - 1].mean()) for s, n in zip(ctx.signals, keep)])
    ctx.record(usage(ctx, used, keep))
    return lls, plain


def usage(ctx: "AttackContext", used: dict[str, list[int]], keep: list[int]) -> dict:
    """What the prefixes actually used: shots per text, target tokens scored, targets cut."""
    full = np.array([len(s.token_ids) for s in ctx.signals])
    cut = int((np.array(keep) < full).sum())
    out = {
        "shots_offered": ctx.config.recall_shots,
        "shots_used": {label: {"min": int(min(u)), "mean": round(float(np.mean(u)), 3), "max": int(max(u))} for label, u in used.items()},
        "target_tokens_scored": int(sum(n - 1 for n in keep)),
        "target_tokens_in_signals": int(sum(len(s.logp) for s in ctx.signals)),
        "n_targets_cut": cut,
        "n_targets": len(keep),
    }
    if cut:
        out["note"] = (f"{ctx.attack}: {cut} of {len(keep)} texts do not fit beside the shortest prefix shot in the {ctx.lm.max_length}-token context "
                       f"and were cut to fit (scored {out['target_tokens_scored']} of {out['target_tokens_in_signals']} target tokens)")
    return out


@register_attack("recall", requires=("prefix_pool",), order=80, check=lambda ctx: check_pools(ctx, ["prefix_pool"]))
def recall(ctx: "AttackContext") -> np.ndarray:
    """LL(x | whole non-member shots) / LL(x); one extra pass."""
    lls, ll = prefixed_lls(ctx, {"recall": "prefix_pool"})
    return np.array([recall_score(a, b) for a, b in zip(ll, lls["recall"])])
