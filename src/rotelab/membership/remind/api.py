"""``rotelab.remind``: REMIND as one Python call (``rotelab remind run`` calls it once).

It validates every input (config ranges; retained / forgotten / holdout pairwise disjoint by text
and by id, each with at least ``folds`` samples; paraphrases and their split), loads the models,
and only then opens the run folder. Given a testbed (its folder, its ``model/`` or an unlearning
folder built from it) and no paraphrases, the testbed's paraphrases of the evaluated samples are
reported as their own row; the manifest records it.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rotelab.core.api import DEFAULT_CACHE, as_model, as_samples, resolve_cache
from rotelab.core.data import Sample, check_disjoint
from rotelab.core.models import LoadOptions
from rotelab.errors import RotelabError
from rotelab.membership.api import check_fits, describe, describe_model, note_companions, testbed_of
from rotelab.membership.remind.classify import STATES
from rotelab.membership.remind.suite import RemindConfig

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel

Data = Path | str | Sequence[Sample] | Sequence[str]
ROLES = dict(zip(STATES, ("retain", "forget", "holdout")))  # state -> option name and default-id role


def remind(
    model: "LanguageModel | Path | str",
    retain: Data,
    forget: Data,
    holdout: Data,
    *,
    paraphrases: Data | None = None,
    out: Path | str | None = None,
    config: RemindConfig = RemindConfig(),
    embedding_model: "LanguageModel | Path | str | None" = None,
    load: LoadOptions = LoadOptions(),
    cache: "SignalCache | None | object" = DEFAULT_CACHE,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Classify retained / forgotten / holdout samples from input loss landscapes, into a run folder.

    Parameters
    ----------
    model : a loaded :class:`~rotelab.core.models.LanguageModel`, or a model / testbed /
        unlearning folder (opened with ``load``): typically the unlearned model.
    retain, forget, holdout : JSONL paths, samples or strings (default ids ``retain:<line>``, ...);
        pairwise disjoint, each with at least ``config.folds`` samples.
    paraphrases : samples with a ``split`` field (``forget | retain | holdout``), reported as
        their own row; default: a testbed's paraphrases of the evaluated samples; ``[]``: none.
    embedding_model : a model with the same tokenizer to take token embeddings from, when the
        target's backend offers no weights.
    config : probe settings, folds, batch size and seed.

    Returns
    -------
    ``metrics.json``'s content: REMIND's and each baseline's forgotten-vs-holdout AUC with
    intervals, TPR at 1% FPR and the 3-way macro AUC.

    >>> # rotelab.remind("runs/demo/unlearn-graddiff", "retain.jsonl", "forget.jsonl", "holdout.jsonl")
    """
    from rotelab.core.runs import open_run
    from rotelab.membership.remind.suite import run_remind
    from rotelab.report import build_report

    config.validate()
    load.validate()
    given = dict(zip(STATES, (retain, forget, holdout)))
    sets = {st: as_samples(d, role=ROLES[st]) for st, d in given.items()}
    for st, rows in sets.items():
        if len(rows) < config.folds:
            raise RotelabError(f"--{ROLES[st]}: {len(rows)} texts < --folds {config.folds}")
    for a, b in combinations(STATES, 2):
        check_disjoint(sets[a], sets[b], f"--{ROLES[a]} and --{ROLES[b]}")
    tb = testbed_of(model)
    companions: dict[str, Any] = {}
    para, para_data = None, paraphrases
    if paraphrases is not None:
        if isinstance(paraphrases, (str, Path)) or len(paraphrases):
            para = split_paraphrases(as_samples(paraphrases, role="paraphrases"))
    elif tb is not None and tb.split("paraphrases") is not None:
        para_data = tb.split("paraphrases")
        para = testbed_paraphrases(para_data, sets)  # type: ignore[arg-type]
        if any(para.values()):
            companions["paraphrases"] = para_data
    if para is not None and not any(para.values()):
        para = None

    lm = as_model(model, load)
    check_fits(lm, {f"--{ROLES[st]}": (given[st], sets[st]) for st in STATES} | ({"--paraphrases": (para_data, [s for r in para.values() for s in r])} if para else {}))
    emb = None
    if embedding_model is not None:
        from rotelab.membership.context import check_same_tokenizer

        emb = as_model(embedding_model, LoadOptions(device="cpu", trust_remote_code=load.trust_remote_code, allow_pickle=load.allow_pickle))
        check_same_tokenizer(lm, emb, [s.text for st in STATES for s in sets[st]], "--embedding-model")
    else:
        from rotelab.membership.context import RESOURCES

        res = RESOURCES["embeddings"]
        if res.from_target not in lm.access:
            raise RotelabError(f"REMIND needs {res.option} ({res.what})")

    p = config.probe
    options = dict(
        model=describe_model(model, lm), **{ROLES[st]: describe(given[st], sets[st]) for st in STATES},
        paraphrases=describe(para_data, [s for rows in para.values() for s in rows]) if para else None,
        embedding_model=describe_model(embedding_model, emb) if emb else None,
        variants=p.k, ranks=list(p.ranks), rates=list(p.rates), swap_rate=p.base_rate, folds=config.folds, C=config.C,
        continuation=config.continuation, batch_size=config.batch_size, long_text=lm.long_text, dtype=str(getattr(lm, "dtype", "")),
    )
    inputs = {ROLES[st]: given[st] for st in STATES if isinstance(given[st], (str, Path))}
    if para and isinstance(para_data, (str, Path)):
        inputs["paraphrases"] = para_data
    models = {k: m for k, m in (("model", lm), ("embedding_model", emb)) if m is not None}
    with open_run(out, "remind run", options, seed=config.seed, inputs=inputs, models=models, overwrite=overwrite, volatile=("batch_size",)) as run:
        note_companions(run, tb, companions)
        result = run_remind(lm, sets, run, config=config, paraphrases=para, embedding_from=emb, cache=resolve_cache(cache), progress=progress)
        build_report(run.path)
    return result


def split_paraphrases(rows: list[Sample]) -> dict[str, list[Sample]]:
    """Paraphrases by state, from each row's ``split`` field (forget | retain | holdout)."""
    bad = [s.id for s in rows if s.meta.get("split") not in ROLES.values()]
    if bad:
        raise RotelabError(f"--paraphrases: row '{bad[0]}' needs a 'split' field: forget | retain | holdout")
    return {st: [s for s in rows if s.meta["split"] == role] for st, role in ROLES.items()}


def testbed_paraphrases(path: Path, sets: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
    """A testbed's paraphrases of the evaluated samples (``source_id`` among their ids), each in
    the state of its source."""
    state = {s.id: st for st, rows in sets.items() for s in rows}
    rows = as_samples(path, role="paraphrases")
    return {st: [s for s in rows if state.get(s.meta.get("source_id")) == st] for st in STATES}
