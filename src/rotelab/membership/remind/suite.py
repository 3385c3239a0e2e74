"""REMIND on validated inputs: classify retained / forgotten / holdout from the input loss
landscape (features in :mod:`~rotelab.membership.remind.landscape`), and compare with pointwise
baselines fed to the same classifier and the same folds (:mod:`~rotelab.membership.remind.classify`).

Writes ``features.parquet`` (features, baselines' scores, fold, out-of-fold probabilities),
``metrics.json``, ``figures/remind_landscape.png`` and ``figures/remind_roc.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from rotelab.core.access import Access
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.core.signals import TokenSignals, compute_signals
from rotelab.errors import RotelabError
from rotelab.membership.attacks import minkpp_score
from rotelab.membership.context import pass_folder
from rotelab.membership.passes import checkpointed_map, clear_passes, logp_many, run_cache
from rotelab.membership.perturb import Neighbours, build_neighbours, make_variants
from rotelab.membership.remind.classify import STATES, assign_folds, cv_proba, fit_proba, state_metrics
from rotelab.membership.remind.landscape import ProbeConfig, landscape_features

if TYPE_CHECKING:
    from pathlib import Path

    from rotelab.core.cache import SignalCache
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel

BASELINES = ("loss", "minkpp", "neighbourhood", "rouge_l")


@dataclass(frozen=True)
class RemindConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    folds: int = 5
    C: float = 1.0  # inverse L2 strength of the logistic regression
    batch_size: int = 64
    continuation: int = 16  # ROUGE-L baseline: greedy tokens after the first half
    seed: int = 0

    def validate(self) -> None:
        p = self.probe
        if not p.ranks or min(p.ranks) < 1 or p.k < 1 or self.folds < 2 or not 0 < p.base_rate <= 1:
            ranks = ",".join(map(str, p.ranks))
            raise RotelabError(f"need --ranks >= 1, --variants >= 1, --folds >= 2, --swap-rate in (0, 1]; got {ranks}, {p.k}, {self.folds}, {p.base_rate}")
        if not all(0 < r <= 1 for r in p.rates):
            raise RotelabError(f"probe rates must be in (0, 1]; got {p.rates}")
        if self.batch_size < 1:
            raise RotelabError(f"--batch-size must be >= 1; got {self.batch_size}")
        if self.C <= 0 or self.continuation < 1:
            raise RotelabError(f"need C > 0 and continuation >= 1; got {self.C}, {self.continuation}")


def probe_variants(
    lm: "LanguageModel", sig: Sequence[TokenSignals], nb: Neighbours, cfg: ProbeConfig, *, batch_size: int = 64, progress: bool = False, passes: "Path | None" = None
) -> list[tuple[dict, dict]]:
    """Per sample: each setting's K variant log-prob arrays ((T-1,) each) and its (K, T) swap
    masks. All variants of all samples are scored in shared batches (saved per batch under
    ``passes`` when given)."""
    rng = np.random.default_rng(cfg.seed)
    settings = cfg.settings()
    seqs: list[list[int]] = []
    masks: list[dict] = []
    for s in sig:
        m = {}
        for j, p in settings:
            v, m[(j, p)] = make_variants(s.token_ids, nb, k=cfg.k, p=p, j=j, rng=rng)
            seqs += v
        masks.append(m)
    out_lp = checkpointed_map(None, seqs, folder=passes, batch_size=batch_size, progress=progress, label="REMIND variants", many=lambda bs: logp_many(lm, bs, label="REMIND variants"))  # type: ignore[arg-type]
    per_sample, at = [], 0
    for m in masks:
        var = {}
        for st in settings:
            var[st] = out_lp[at : at + cfg.k]
            at += cfg.k
        per_sample.append((var, m))
    return per_sample


def probe_samples(
    lm: "LanguageModel", sig: Sequence[TokenSignals], nb: Neighbours, cfg: ProbeConfig, *, batch_size: int = 64, progress: bool = False, passes: "Path | None" = None
) -> list[dict[str, float]]:
    """Landscape features of every sample (:func:`probe_variants`, then
    :func:`~rotelab.membership.remind.landscape.landscape_features`)."""
    probed = probe_variants(lm, sig, nb, cfg, batch_size=batch_size, progress=progress, passes=passes)
    return [landscape_features(s, var, m, cfg) for s, (var, m) in zip(sig, probed)]


def rouge_continuation(lm: "LanguageModel", sig: Sequence[TokenSignals], *, n_new: int, batch_size: int = 64, passes: "Path | None" = None) -> np.ndarray:
    """ROUGE-L between the greedy continuation of each text's first half and its true next tokens.

    The prompt keeps its last context - n_new tokens (only a windowed text longer than the
    context is cut).
    """
    from rotelab.core.similarity import rouge_l

    items = []
    for s in sig:
        ids = s.token_ids.tolist()
        h = max(1, len(ids) // 2)
        items.append((ids[max(0, h - (lm.max_length - n_new)) : h], ids[h : h + n_new]))

    def score(batch: list[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        gen = lm.greedy([p for p, _ in batch], n_new, batch_size=len(batch))
        return [np.array([rouge_l(lm.detokenize(t), lm.detokenize(g[: len(t)])) if t else 0.0]) for (_, t), g in zip(batch, gen)]

    out = checkpointed_map(score, items, folder=passes, batch_size=batch_size, length=lambda it: len(it[0]), label="ROUGE-L continuations")
    return np.concatenate(out) if out else np.zeros(0)


def _features(lm: "LanguageModel", samples: list["Sample"], nb: Callable[[], Neighbours], cfg: RemindConfig, cache, progress: bool, run: RunFolder, label: str) -> tuple[dict[str, np.ndarray], Any]:
    """Landscape features plus every baseline's score, as columns; and the long-text counts."""
    counts: list = []
    sig = compute_signals(lm, [s.text for s in samples], ids=[s.id for s in samples], batch_size=cfg.batch_size, cache=cache, progress=progress, counts_out=counts)
    feats = probe_samples(lm, sig, nb(), cfg.probe, batch_size=cfg.batch_size, progress=progress, passes=pass_folder(run, f"{label} variants"))
    cols = {k: np.array([f[k] for f in feats]) for k in feats[0]}
    base = f"dl_mean_j{cfg.probe.ranks[0]}_p{cfg.probe.base_rate:g}"
    cols["b_loss"] = -cols["loss"]
    if Access.DISTRIBUTION in lm.access:  # a server without --server-moments gives no moments
        cols["b_minkpp"] = np.array([minkpp_score(s) for s in sig])
    cols["b_neighbourhood"] = cols[base]  # mean NLL(neighbours) - NLL(x): Mattern et al. 2023
    if Access.GENERATION in lm.access:
        cols["b_rouge_l"] = rouge_continuation(lm, sig, n_new=cfg.continuation, batch_size=cfg.batch_size, passes=pass_folder(run, f"{label} rouge"))
    return cols, counts[0]


def landscape_columns(cols: dict) -> list[str]:
    return [k for k in cols if not k.startswith("b_") and k not in ("id", "state", "fold", "set") and not k.startswith("p_")]


def run_remind(
    lm: "LanguageModel",
    sets: dict[str, list["Sample"]],
    run: RunFolder,
    *,
    config: RemindConfig = RemindConfig(),
    paraphrases: dict[str, list["Sample"]] | None = None,
    embedding_from: "LanguageModel | Path | None" = None,
    cache: "SignalCache | None" = None,
    progress: bool = True,
) -> dict[str, Any]:
    """REMIND on retained / forgotten / holdout samples (validated: see
    :func:`rotelab.membership.remind.api.remind`); returns ``metrics.json``'s content.

    Texts longer than the context are counted in the manifest's notes and on stderr; the
    variant and continuation passes save their batches in the run folder (resumable).
    """
    from rotelab.core.signals import record_long_text
    from rotelab.membership.remind.figures import plot_landscape, plot_state_roc

    samples = [s for st in STATES for s in sets[st]]
    y = np.array([i for i, st in enumerate(STATES) for _ in sets[st]])
    table: list[Neighbours] = []

    def nb() -> Neighbours:  # built once, and only when some features are still to compute
        if not table:
            table.append(build_neighbours(lm, max_rank=max(config.probe.ranks), embedding_from=embedding_from))
        return table[0]

    with run_cache(run, cache) as c:

        def do_features():
            cols, counts = _features(lm, samples, nb, config, c, progress, run, "remind")
            record_long_text(run, counts)
            cols.update(id=[s.id for s in samples], state=[STATES[i] for i in y], fold=assign_folds(y, config.folds, config.seed))
            run.write_parquet("features_raw.parquet", cols)

        run.step("features", do_features)
        cols = read_parquet(run.file("features_raw.parquet"))
        fold = cols["fold"].astype(int)
        names = landscape_columns(cols)
        X = np.column_stack([cols[k] for k in names]).astype(float)
        P = cv_proba(X, y, fold, config.C)
        metrics: dict[str, Any] = {"remind": state_metrics(P, y, seed=config.seed) | {"features": names}, "baselines": {}}
        probs = {}
        for b in BASELINES:
            if f"b_{b}" not in cols:
                needs = "generation" if b == "rouge_l" else "the next-token distribution (--server-moments)"
                metrics["baselines"][b] = {"auc_forgotten_vs_holdout": None, "reason": f"the {lm.backend} backend offers no {needs}"}
                continue
            Pb = cv_proba(cols[f"b_{b}"].reshape(-1, 1).astype(float), y, fold, config.C)
            probs[b] = Pb
            metrics["baselines"][b] = state_metrics(Pb, y, seed=config.seed)
        out_cols = {k: v for k, v in cols.items()} | {f"p_{st}": P[:, i] for i, st in enumerate(STATES)}
        run.write_parquet("features.parquet", out_cols)
        if paraphrases and any(paraphrases.values()):
            metrics["paraphrases"] = _paraphrase_row(lm, paraphrases, nb, cols, X, y, names, config, c, progress, run)
    metrics["config"] = asdict(config)
    run.write_json("metrics.json", metrics)
    plot_landscape(run, cols, config.probe)
    plot_state_roc(run, y, P, probs, metrics)
    clear_passes(run)
    return metrics


def _paraphrase_row(lm, paraphrases, nb, cols_orig, X, y, names, config: RemindConfig, cache, progress, run: RunFolder) -> dict[str, Any]:
    """Paraphrased questions, scored by a classifier fitted on every original sample (none of them
    is a paraphrase), reported with the same figures."""
    states = [st for st in STATES if paraphrases.get(st)]
    ps = [s for st in states for s in paraphrases[st]]
    yp = np.array([STATES.index(st) for st in states for _ in paraphrases[st]])

    def do():
        cols, counts = _features(lm, ps, nb, config, cache, progress, run, "paraphrase")
        run.note("long_text_paraphrases", counts.as_dict(), say=counts.message() and f"paraphrases: {counts.message()}")
        run.write_parquet("paraphrase_features.parquet", cols | {"id": [s.id for s in ps], "state": [STATES[i] for i in yp]})

    run.step("paraphrase features", do)
    cols = read_parquet(run.file("paraphrase_features.parquet"))
    P = fit_proba(X, y, np.column_stack([cols[k] for k in names]).astype(float), config.C)
    row = {"remind": state_metrics(P, yp, seed=config.seed)}
    for b in (b for b in ("loss", "minkpp") if f"b_{b}" in cols):
        # Fitted on the originals' score too: the same question for every method.
        xb = np.asarray(cols_orig[f"b_{b}"], dtype=float).reshape(-1, 1)
        Pb = fit_proba(xb, y, cols[f"b_{b}"].reshape(-1, 1).astype(float), config.C)
        row[b] = state_metrics(Pb, yp, seed=config.seed)
    return row
