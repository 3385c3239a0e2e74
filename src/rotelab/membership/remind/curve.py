"""REMIND's figures against the number of variants K per probe setting (the default's evidence).

One probe at K_max = max(ks) variants per setting; the curve's point k reads the first k variants
of every setting. The subsets are nested, so the points differ only by the variants added, not
by a new draw (a separate run at ``--variants k`` draws other variants: the same distribution,
other numbers). The cost of a run is 1 + S·K forward passes per sample (S settings: 6 by default)
plus the ROUGE-L continuation, so it grows linearly in K.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rotelab.core.signals import compute_signals
from rotelab.errors import RotelabError
from rotelab.membership.perturb import build_neighbours
from rotelab.membership.remind.classify import STATES, assign_folds, cv_proba, state_metrics
from rotelab.membership.remind.landscape import landscape_features, setting_name
from rotelab.membership.remind.suite import RemindConfig, probe_variants

if TYPE_CHECKING:
    from pathlib import Path

    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel


def variant_curve(
    lm: "LanguageModel",
    sets: dict[str, list["Sample"]],
    ks: Sequence[int] = (4, 8, 16, 32),
    *,
    config: RemindConfig = RemindConfig(),
    embedding_from: "LanguageModel | Path | None" = None,
    passes: "Path | None" = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """REMIND's and the neighbourhood baseline's out-of-fold figures at each K in ``ks``.

    ``sets`` maps each state (retained / forgotten / holdout) to validated samples, as
    :func:`~rotelab.membership.remind.suite.run_remind` takes them; the folds and classifier are
    REMIND's. Returns one row per k: ``k``, ``forward_passes_per_sample`` and the
    :func:`~rotelab.membership.remind.classify.state_metrics` of ``remind`` and ``neighbourhood``
    (mean loss change at the first rank and the base rate, Mattern et al. 2023).
    """
    if not ks or min(ks) < 1:
        raise RotelabError(f"variant counts must be integers >= 1; got {list(ks)}")
    samples = [s for st in STATES for s in sets[st]]
    y = np.array([i for i, st in enumerate(STATES) for _ in sets[st]])
    sig = compute_signals(lm, [s.text for s in samples], ids=[s.id for s in samples], batch_size=config.batch_size, progress=progress)
    nb = build_neighbours(lm, max_rank=max(config.probe.ranks), embedding_from=embedding_from)
    probed = probe_variants(lm, sig, nb, replace(config.probe, k=max(ks)), batch_size=config.batch_size, progress=progress, passes=passes)
    fold = assign_folds(y, config.folds, config.seed)
    first = f"dl_mean_{setting_name(config.probe.ranks[0], config.probe.base_rate)}"
    rows = []
    for k in sorted(set(ks)):
        probe = replace(config.probe, k=k)
        feats = [landscape_features(s, {st: v[:k] for st, v in var.items()}, {st: m[:k] for st, m in masks.items()}, probe) for s, (var, masks) in zip(sig, probed)]
        cols = {name: np.array([f[name] for f in feats], dtype=float) for name in feats[0]}
        X = np.column_stack(list(cols.values()))
        rows.append({
            "k": k,
            "forward_passes_per_sample": 1 + len(probe.settings()) * k,
            "remind": state_metrics(cv_proba(X, y, fold, config.C), y, seed=config.seed),
            "neighbourhood": state_metrics(cv_proba(cols[first].reshape(-1, 1), y, fold, config.C), y, seed=config.seed),
        })
    return rows
