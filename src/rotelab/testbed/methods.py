"""Unlearning methods: one class per method, filed in :data:`METHODS` by its decorator (the only
list: ``rotelab testbed unlearn --method`` takes its choices, its "Did you mean" and its help from it).

Objectives (minimised; F = forget, R = retain; log pi(y|x) = summed token log-prob of a sample):

    GA        L = gamma * E_F[ log pi_theta(y|x) / |y| ]                    (mean token log-lik)
    GradDiff  L = L_GA + alpha * E_R[ -log pi_theta(y|x) / |y| ]            gamma = alpha = 1
    NPO       L = gamma * (2 / beta) E_F[ log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta) ] + alpha * NLL(R)
              beta = 0.1, pi_ref = a frozen copy of the starting model (Zhang et al. 2024)
    retrain   no objective: a model trained from scratch on every trained sample not forgotten
              (``retain`` + ``member_prefix_pool``), the gold standard

A method overrides :meth:`Method.forget_loss` / :meth:`Method.loss` (NPO extends GradDiff and
changes only its forget term); a procedure of its own (the retrain control) overrides
:meth:`Method.run`. The loop that checkpoints at outcome strengths lives in
:mod:`rotelab.testbed.unlearn`. A capability (or a ``rotelab.plugins`` entry point) adds a
method in its own ``rotelab/<pkg>/unlearning.py`` module.

This module imports no torch (the CLI reads the registry for ``--help``): tensors arrive in
:class:`Batch`, and the one torch function NPO needs is imported where it is used.

>>> METHODS.names()[:4]
['ga', 'graddiff', 'npo', 'retrain']
>>> issubclass(METHODS["npo"].obj, METHODS["graddiff"].obj)
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from rotelab.core.registry import Registry, discover
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from torch import Tensor

    from rotelab.testbed.folder import Testbed
    from rotelab.testbed.unlearn import Job, UnlearnConfig


@dataclass(frozen=True)
class Batch:
    """A sampled batch of one split, as a method's loss sees it."""

    logp: "Tensor"  # (B,) summed token log-prob under the model being unlearned (with gradient)
    n_tokens: "Tensor"  # (B,) predicted tokens per sample
    ref_logp: "Tensor | None" = None  # (B,) under the frozen starting model (``needs_reference``)

    @property
    def mean_logp(self) -> "Tensor":
        """(B,) mean token log-likelihood per sample."""
        return self.logp / self.n_tokens


class Method:
    """An unlearning method: the objective minimised at each step of the outcome-strength loop.

    Class attributes say what the loop must prepare: ``uses_retain`` (a retain batch each step),
    ``needs_reference`` (log-probs under a frozen copy of the starting model).
    """

    uses_retain = False
    needs_reference = False

    def __init__(self, config: "UnlearnConfig"):
        self.config = config

    def check(self, testbed: "Testbed") -> None:
        """Refuse, in one line, a testbed this method cannot run on (before any run folder exists)."""

    def forget_loss(self, forget: Batch) -> "Tensor":
        """The forget term, before its weight gamma."""
        raise NotImplementedError

    def loss(self, forget: Batch, retain: Batch | None) -> "Tensor":
        """The objective minimised at one step."""
        return self.config.forget_weight * self.forget_loss(forget)

    def run(self, job: "Job") -> dict[str, Any]:
        """The whole procedure; by default the loop that checkpoints at 1.0x and 1.5x the stop-calibration loss."""
        return job.ascend(self)


METHODS: Registry[type[Method]] = Registry("unlearning method", base=Method, discover=discover("unlearning"))


@METHODS.register("ga")
class GA(Method):
    """Gradient ascent: L = E_F[log pi(y|x) / |y|], the forget set's mean token log-likelihood."""

    def forget_loss(self, forget: Batch) -> "Tensor":
        return forget.mean_logp.mean()


@METHODS.register("graddiff")
class GradDiff(GA):
    """Gradient difference: gradient ascent on forget plus the NLL of retain, L = L_GA + alpha NLL(R)."""

    uses_retain = True

    def loss(self, forget: Batch, retain: Batch | None) -> "Tensor":
        assert retain is not None, "GradDiff needs a retain batch"
        return super().loss(forget, retain) + self.config.retain_weight * (-retain.mean_logp.mean())


@METHODS.register("npo")
class NPO(GradDiff):
    """Negative preference optimisation (Zhang et al. 2024): GradDiff with the forget term
    (2/beta) E_F[log(1 + (pi_theta / pi_ref)^beta)], bounded where GA's is not."""

    needs_reference = True

    def forget_loss(self, forget: Batch) -> "Tensor":
        assert forget.ref_logp is not None, "NPO needs reference log-probs"
        return npo_loss(forget.logp, forget.ref_logp, self.config.beta)


@METHODS.register("retrain")
class Retrain(Method):
    """Retrain control: a model trained from scratch on retain (and the member prefix pool) only, with the testbed's preset and seed."""

    def check(self, testbed: "Testbed") -> None:
        from rotelab.testbed.splits import read_split

        if _testbed_preset(testbed) is None:
            raise RotelabError(f"{testbed.root / 'manifest.json'}: no fact-testbed preset (model and training specs) recorded; 'retrain' needs one")
        for i, row in enumerate(read_split(testbed.root, "retain"), 1):
            if not (isinstance(row.get("copies"), int) and row["copies"] >= 1):
                raise RotelabError(f"{testbed.root / 'splits' / 'retain.jsonl'}: row {i}: field 'copies' must be an integer >= 1 (the exposures to retrain with)")

    def run(self, job: "Job") -> dict[str, Any]:
        from rotelab.core.training import ModelSpec, TrainSpec, new_model, train_on_schedule

        m = job.testbed_manifest
        spec_m = ModelSpec(**{f.name: m["preset"]["model"][f.name] for f in fields(ModelSpec)})
        seed = m.get("seed") or 0
        spec_t = TrainSpec(**{**{f.name: m["preset"]["train"][f.name] for f in fields(TrainSpec)}, "seed": seed})
        model = new_model(spec_m, seed=seed)
        log = train_on_schedule(model, job.ids["retain"], [r["copies"] for r in job.rows["retain"]], spec_t, progress=job.progress, label="retrain on retain")
        job.save_model(model, "model")
        losses = {k: job.mean_nll(model, k) for k in ("forget", "retain", "holdout")}
        return {"method": "retrain", "losses": losses, "training": log, "strongest": "model"}


def npo_loss(logp: "Tensor", logp_ref: "Tensor", beta: float) -> "Tensor":
    """(2/beta) mean log(1 + exp(beta (logp - logp_ref))) = -(2/beta) mean log sigmoid(-beta (...)).

    >>> import torch
    >>> round(float(npo_loss(torch.tensor([-10.0]), torch.tensor([-10.0]), 0.1)), 4)  # (2/0.1) log 2
    13.8629
    """
    import torch.nn.functional as F

    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref)).mean()


def _testbed_preset(testbed: "Testbed") -> dict | None:
    """The fact-testbed preset recorded in the testbed's manifest (model and training specs), or None."""
    from rotelab.core.training import ModelSpec, TrainSpec

    try:
        m = json.loads((testbed.root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

    p = m.get("preset") if isinstance(m, dict) else None
    ok = isinstance(p, dict) and all(isinstance(p.get(k), dict) and {f.name for f in fields(spec)} <= set(p[k]) for k, spec in (("model", ModelSpec), ("train", TrainSpec)))
    return p if ok else None


@METHODS.register("simnpo")
class SimNPO(GradDiff):
    """SimNPO (Fan et al. 2024, "Simplicity prevails"): NPO without the reference model, on the
    length-normalised log-likelihood: (2/beta) E_F[log(1 + exp(beta log pi(y|x) / |y|))] + alpha NLL(R)
    (margin delta = 0, OpenUnlearning's default; OpenUnlearning uses beta = 4.5: pass ``--beta``)."""

    def forget_loss(self, forget: Batch) -> "Tensor":
        import torch.nn.functional as F

        return -(2.0 / self.config.beta) * F.logsigmoid(-self.config.beta * forget.mean_logp).mean()
