"""``mia run``: score members and non-members with every chosen attack, one signal pass shared.

Writes ``scores.parquet`` (id, label, one column per attack), ``metrics.json`` (per attack
:func:`rotelab.core.stats.summarize` and, under ``details``, what the attack recorded: prefix
shots and target tokens used, the neighbour generator, ...; plus the bag-of-words check under
``"bag_of_words"``), ``figures/mia_roc.png``. An attack's details also go to the manifest's notes
(``attack_<name>``), with its warning on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.core.io import load_npy, read_json, save_npy
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.core.signals import compute_signals
from rotelab.core.stats import summarize
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.bow import confound_check
from rotelab.membership.context import AttackContext, MIAConfig
from rotelab.membership.passes import clear_passes, run_cache

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel


def check_access(lm: "LanguageModel", attacks: list[str]) -> None:
    """Refuse, before any pass, an attack the backend cannot serve."""
    runnable = ",".join(n for n in ATTACKS if ATTACKS[n].needs in lm.access) or "none"
    for a in attacks:
        lm.require(ATTACKS[a].needs, method=f"attack '{a}'", remaining=f"--attacks {runnable}")


def score_attacks(ctx: AttackContext, attacks: list[str], run: RunFolder | None = None) -> dict[str, np.ndarray]:
    """Scores of each attack (higher = member); with ``run``, each attack is a resumable step
    whose scores (``attack_<name>.npy``) and details (``attack_<name>.json``) are kept."""
    out = {}
    for a in attacks:
        attack = ATTACKS[a]
        if run is None:
            out[a] = attack.run(ctx)
            continue
        scores, details = run.file(f"attack_{a}.npy"), run.file(f"attack_{a}.json")

        def go(attack=attack, scores=scores, details=details):
            s = attack.run(ctx)
            if attack.name in ctx.details:
                run.write_json(details.name, ctx.details[attack.name])
            save_npy(scores, s)
            return s

        def load(a=a, scores=scores, details=details):
            if details.exists():
                ctx.details[a] = read_json(details)
            return load_npy(scores)

        out[a] = run.step(f"attack:{a}", go, load=load)
    return out


def run_mia(
    lm: "LanguageModel",
    members: list["Sample"],
    nonmembers: list["Sample"],
    run: RunFolder,
    attacks: list[str],
    *,
    config: MIAConfig = MIAConfig(),
    cache: "SignalCache | None" = None,
    progress: bool = True,
    **resources: Any,
) -> dict[str, Any]:
    """Run the suite on validated inputs in an open run folder; returns ``metrics.json``'s content.

    ``resources`` are :class:`AttackContext` fields (``reference``, ``prefix_texts``, ...).
    Texts longer than the context are counted in the manifest's notes and on stderr. Every
    attack is a resumable step, and every extra pass saves its batches in the run folder.
    """
    from rotelab.core.signals import record_long_text

    samples = members + nonmembers
    texts = [s.text for s in samples]
    labels = np.array([1] * len(members) + [0] * len(nonmembers))
    check_access(lm, attacks)
    with run_cache(run, cache) as c:
        counts: list = []
        sig = compute_signals(lm, texts, ids=[s.id for s in samples], batch_size=config.batch_size, cache=c, progress=progress, counts_out=counts)
        record_long_text(run, counts[0])
        ctx = AttackContext(lm, texts, sig, config, cache=c, progress=progress, run=run, **resources)
        scores = score_attacks(ctx, attacks, run)
    run.write_parquet("scores.parquet", {"id": [s.id for s in samples], "label": labels, **scores})
    metrics: dict[str, Any] = {a: summarize(scores[a], labels, seed=config.seed) for a in attacks}
    for a, d in ctx.details.items():
        metrics[a]["details"] = d
        run.note(f"attack_{a}", d, say=d.get("note"))
    metrics["bag_of_words"] = confound_check(texts, labels, seed=config.seed)
    run.write_json("metrics.json", metrics)
    plot_roc(run, scores, labels, metrics)
    clear_passes(run)
    return metrics


def plot_roc(run: RunFolder, scores: dict[str, np.ndarray], labels: np.ndarray, metrics: dict[str, Any], *, name: str = "mia_roc", title: str = "") -> None:
    """ROC curves (log FPR axis, where low-FPR figures live), AUC and bootstrap CI in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rotelab.core.stats import roc_curve_points

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for a, s in scores.items():
        fpr, tpr = roc_curve_points(s, labels)
        m = metrics[a]
        ci = m.get("auc_ci") or [float("nan")] * 2
        ax.plot(np.maximum(fpr, 1e-3), tpr, label=f"{a}: AUC {m['auc']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]")
    ax.plot([1e-3, 1], [1e-3, 1], "k:", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("false positive rate (log)")
    ax.set_ylabel("true positive rate")
    n1, n0 = int(labels.sum()), int((1 - labels).sum())
    ax.set_title(title or f"{n1} members vs {n0} non-members; 95% bootstrap CI, seed {run.manifest.get('seed')}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    run.figure(name, fig)


def load_result(run: Path) -> tuple[dict, dict]:
    return read_json(run / "metrics.json"), read_parquet(run / "scores.parquet")
