"""The testbed's Python API: build a testbed, unlearn its forget set.

Each entry point validates every input first, then opens its run folder (resuming only work
computed from the same inputs and options), computes, builds the report, and returns what the
command prints::

    >>> import rotelab.testbed.api as testbed
    >>> # testbed.build("tiny", out="runs/tb")                      # {'loss_auc_facts': ..., ...}
    >>> # testbed.unlearn("runs/tb", method="graddiff", out="runs/u")  # checkpoints at 1.0x / 1.5x
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rotelab.errors import RotelabError


def build(preset: str = "small", *, out: Path | str | None = None, seed: int = 0, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build (or resume) the testbed ``preset`` into ``out``; returns its headline figures.

    ``preset`` is any name in :data:`rotelab.testbed.presets.TESTBEDS` (the fact/book presets
    ``tiny`` and ``small``, and those other capabilities register, e.g. ``books``). A folder
    built with another preset or seed is refused (or rebuilt with ``overwrite=True``).
    """
    from rotelab.core.runs import open_run
    from rotelab.report import build_report
    from rotelab.testbed.presets import TESTBEDS

    builder = TESTBEDS.get(preset, option="--preset").obj
    _check_seed(seed)
    with open_run(out, "testbed build", {"preset": preset}, seed=seed, overwrite=overwrite) as run:
        result = builder(run, seed=seed, progress=progress)
        build_report(run.path)
    return result


def unlearn(
    testbed: Path | str,
    *,
    method: str = "npo",
    lr: float | None = None,
    max_steps: int = 1000,
    beta: float = 0.1,
    retain_weight: float = 1.0,
    layer: int = -1,
    steering_coeff: float = 5.0,
    verify_every: int = 0,
    seed: int = 0,
    out: Path | str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Unlearn ``testbed``'s forget set with a registered method (:data:`rotelab.testbed.methods.METHODS`).

    ``testbed`` is a testbed folder (or its ``model/``). Checkpoints are saved when the forget
    loss reaches 1.0x and 1.5x the starting model's loss on ``splits/stop_calibration.jsonl``
    (never-trained facts disjoint from the holdout); ``<out>/model`` is the strongest. The
    testbed's splits (stop calibration included), weights and tokenizer are the run's inputs: a
    re-run resumes only if they are unchanged. A testbed without the stop-calibration split is
    refused in one line saying how to rebuild it (the trained model comes out the same). Returns ``unlearn.json`` without its step log (and the retrain's training log).

    ``lr`` None: the method's own (:attr:`Method.lr`). ``retain_weight`` is alpha; ``layer`` and ``steering_coeff`` are RMU's block l and c.
    ``verify_every`` > 0 logs verification figures (loss-attack and Min-K% AUC with intervals,
    forget/retain/holdout loss) every that many steps into ``unlearn.json``'s ``verify_log``
    (the ``verify`` monitor, :class:`rotelab.verify.callback.VerifyEvery`), with the figure ``figures/unlearning_verify.png``.
    """
    from rotelab.core.io import read_json
    from rotelab.core.runs import open_run
    from rotelab.report import build_report
    from rotelab.testbed.unlearn import UnlearnConfig, testbed_inputs, unlearn as run_unlearn, validate

    from rotelab.testbed.methods import METHODS

    if lr is None:
        lr = METHODS.get(method, option="--method").obj.lr
    config = UnlearnConfig(method=method, lr=lr, max_steps=max_steps, beta=beta, retain_weight=retain_weight, layer=layer, steering_coeff=steering_coeff, seed=seed)
    tb, _ = validate(testbed, config)
    if not (isinstance(verify_every, int) and verify_every >= 0):
        raise RotelabError(f"--verify-every must be an integer >= 0 (0: off); got {verify_every}")
    options = {"testbed": str(testbed), "method": method, "lr": lr, "max_steps": max_steps, "beta": beta}
    default = UnlearnConfig()  # options added later enter only when set: earlier runs keep their identity
    options |= {k: getattr(config, k) for k in ("retain_weight", "layer", "steering_coeff") if getattr(config, k) != getattr(default, k)}
    options |= {"verify_every": verify_every} if verify_every else {}
    callbacks = []
    if verify_every:
        from rotelab.testbed.unlearn import MONITORS

        callbacks.append(MONITORS.get("verify").obj(verify_every, seed=seed))
    with open_run(out, "testbed unlearn", options, seed=seed, inputs=testbed_inputs(tb), overwrite=overwrite, volatile=("testbed",)) as run:
        result = run.step("unlearn", lambda: run_unlearn(tb.root, config, run, progress=progress, callbacks=callbacks), load=lambda: read_json(run.file("unlearn.json")))
        build_report(run.path)
    return {k: v for k, v in result.items() if k not in ("log", "training", "verify_log")}


def _check_seed(seed: int) -> None:
    if not (isinstance(seed, int) and seed >= 0):
        raise RotelabError(f"--seed must be an integer >= 0; got {seed}")
