"""Python entry points of ``rotelab entropy``: per-layer matrix-based entropy (:func:`mbe`) and
CE / GAPT training (:func:`train`).

Each validates all of its inputs, then loads the model, and only then opens its run folder
(:func:`rotelab.core.runs.open_run`), whose identity (options, seed, input hashes, model
fingerprint) decides whether a re-run resumes, is refused, or (``overwrite=True``) recomputes.

>>> # from rotelab.entropy.api import mbe, train
>>> # mbe("runs/demo/testbed", "runs/demo/testbed/splits/members.jsonl", out="runs/mbe")["layers"][0]
>>> # train(config=LMTrainConfig(preset="tiny", gapt=GaptConfig(steps=300)), out="runs/gapt")["heldout_ce"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rotelab.core.api import as_model, as_samples, data_identity
from rotelab.core.models import LoadOptions
from rotelab.core.runs import open_run
from rotelab.entropy.lm_train import LMTrainConfig
from rotelab.entropy.measure import MBEConfig

if TYPE_CHECKING:
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel


def mbe(
    model: "LanguageModel | Path | str",
    data: "Path | str | Sequence[Sample] | Sequence[str]",
    *,
    out: Path | str | None = None,
    config: MBEConfig = MBEConfig(),
    load: LoadOptions = LoadOptions(),
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Matrix-based entropy per layer of ``model`` over ``data``, per group, into a run folder.

    Parameters
    ----------
    model : a loaded :class:`LanguageModel`, or a model / testbed folder (opened with ``load``).
    data : a JSONL path (``text``, optional ``id`` and ``label`` or ``split`` to compare groups),
        :class:`Sample` objects (``meta["label"]`` groups them) or plain strings.
    config : patch size, Rényi order, batch size, bootstrap resamples and seed.

    Returns
    -------
    ``mbe.json``'s content: per (group, layer) the mean MBE in nats with a bootstrap 95% interval.
    Texts longer than the context follow the model's long-text policy (counted in the manifest's
    notes; ``error`` refuses them, naming the file and sample, before the run folder exists).
    """
    from rotelab.core.access import Access
    from rotelab.entropy.measure import mbe_run, plan_texts
    from rotelab.report import build_report

    config.validate()
    samples = as_samples(data, role="data")
    inputs, data_option = data_identity("data", data, samples)
    lm = as_model(model, load)
    lm.require(Access.HIDDEN, method="entropy mbe")
    plan = plan_texts(lm, samples, source=str(data) if inputs else None)
    options = dict(model=_label(model, lm), data=data_option, patch=config.patch, alpha=config.alpha, n_boot=config.n_boot, batch_size=config.batch_size,
                   long_text=lm.long_text, dtype=str(getattr(lm, "dtype", "")))
    with open_run(out, "entropy mbe", options, seed=config.seed, inputs=inputs, models={"model": lm},
                  overwrite=overwrite, volatile=("batch_size",)) as run:
        result = mbe_run(lm, samples, run, config, progress=progress, plan=plan)
        build_report(run.path)
    return result


def train(*, config: LMTrainConfig = LMTrainConfig(), out: Path | str | None = None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train a testbed-preset GPT-2 on the preset's shipped books with CE or GAPT, then measure
    held-out and train CE and held-out MBE per layer (``entropy_train.json``'s content).

    Every option of ``config`` (batch size included: it changes the updates) and its seed make
    the run's identity: a re-run into ``out`` with other values is refused, or recomputed with
    ``overwrite=True``.
    """
    from rotelab.entropy.lm_train import train_lm
    from rotelab.report import build_report

    config.validate()
    with open_run(out, "entropy train", asdict(config), seed=config.seed, overwrite=overwrite) as run:
        result = train_lm(config, run, progress=progress)
        build_report(run.path)
    return result


def _label(model: Any, lm: "LanguageModel") -> str:
    return str(model) if isinstance(model, (str, Path)) else lm.name
