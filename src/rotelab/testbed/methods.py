"""Unlearning methods: one class per method, filed in :data:`METHODS` by its decorator (the only
list: ``rotelab testbed unlearn --method`` takes its choices, its "Did you mean" and its help from it).

Objectives (minimised; F = forget, R = retain; log pi(y|x) = summed token log-prob of a sample):

    GA        L = gamma * E_F[ log pi_theta(y|x) / |y| ]                    (mean token log-lik)
    GradDiff  L = L_GA + alpha * E_R[ -log pi_theta(y|x) / |y| ]            gamma = alpha = 1
    NPO       L = gamma * (2 / beta) E_F[ log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta) ] + alpha * NLL(R)
              beta = 0.1, pi_ref = a frozen copy of the starting model (Zhang et al. 2024)
    SimNPO    L = gamma * (2 / beta) E_F[ log(1 + exp(beta log pi_theta(y|x) / |y|)) ] + alpha * NLL(R)   (Fan et al. 2024)
    RMU       L = gamma * E_F[ |h_l - c u|^2 / d ] + alpha * E_R[ |h_l - h_l^frozen|^2 / d ], per token, only the
              MLPs of blocks l-2..l updated; u a seeded random unit vector (Li et al. 2024, WMDP)
    IdkPO     L = -gamma * (2 / beta) E_F[ log sigmoid(beta ((log pi(y_idk|x) - log pi_ref(y_idk|x))
                                                        - (log pi(y_f|x) - log pi_ref(y_f|x)))) ] + alpha * NLL(R)
              y_idk a refusal, y_f the fact's answer after its question x (OpenUnlearning's IdkDPO)
    retrain   no objective: a model trained from scratch on every trained sample not forgotten
              (``retain`` + ``member_prefix_pool``), the gold standard

A method overrides :meth:`Method.forget_loss` / :meth:`Method.loss` (NPO extends GradDiff and
changes only its forget term), or :meth:`Method.step_loss` when its objective is not a function of
whole-sample log-probs (RMU reads activations, IdkPO answer-only log-probs), and
:meth:`Method.trainable` to update only some parameters (RMU); a procedure of its own (the retrain control) overrides
:meth:`Method.run`. The loop that checkpoints at outcome strengths lives in
:mod:`rotelab.testbed.unlearn`. A capability (or a ``rotelab.plugins`` entry point) adds a
method in its own ``rotelab/<pkg>/unlearning.py`` module.

This module imports no torch (the CLI reads the registry for ``--help``): tensors arrive in
:class:`Batch`, and torch is imported inside the functions that use it.

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
    ``needs_reference`` (log-probs under a frozen copy of the starting model); ``lr`` is the
    learning rate used when none is given.
    """

    uses_retain = False
    needs_reference = False
    lr = 1e-4

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

    def trainable(self, model) -> list:
        """The parameters the loop updates (all of them by default)."""
        return list(model.parameters())

    def step_loss(self, job: "Job", model, forget: list[int], retain: list[int] | None, ref) -> "Tensor":
        """The objective of one step on the sampled ``forget`` / ``retain`` rows (indices into
        ``job.ids[split]``; ``retain`` is None unless ``uses_retain``); ``ref`` is the frozen
        starting model (``needs_reference``) or None. By default: one :class:`Batch` per split, then :meth:`loss`."""
        fb = job.batch(model, [job.ids["forget"][i] for i in forget], ref)
        rb = job.batch(model, [job.ids["retain"][i] for i in retain]) if retain is not None else None
        return self.loss(fb, rb)

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
        return super().loss(forget, retain) + self.retain_loss(retain)

    def retain_loss(self, retain: Batch) -> "Tensor":
        """alpha NLL(R): alpha times the retain batch's mean token NLL."""
        return self.config.retain_weight * (-retain.mean_logp.mean())


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


@METHODS.register("rmu")
class RMU(Method):
    """RMU (Li et al. 2024, "The WMDP Benchmark", representation misdirection): steer block l's
    forget-set activations to a fixed random direction, keep its retain-set activations, updating
    only the MLPs of blocks l-2..l: E_F[|h_l - c u|^2] + alpha E_R[|h_l - h_l^frozen|^2]."""

    uses_retain = True
    needs_reference = True
    lr = 1e-3  # at 1e-4 the tiny testbed's forget loss is still 1.86 (< 1.0x, 2.77) after 1000 steps

    def __init__(self, config: "UnlearnConfig"):
        super().__init__(config)
        self._u: "Tensor | None" = None

    def layer(self, model) -> int:
        """Block index l of ``config.layer`` (negative counts from the end)."""
        from rotelab.core.hooks import find_blocks, site_layer

        return site_layer(self.config.layer, len(find_blocks(model)))

    def trainable(self, model) -> list:
        """The MLP parameters of blocks l-2..l (the paper's choice)."""
        from rotelab.core.hooks import find_blocks

        blocks, l = find_blocks(model), self.layer(model)
        params = []
        for i in range(max(0, l - 2), l + 1):
            mlp = getattr(blocks[i], "mlp", None)
            if mlp is None:
                raise RotelabError(f"block {i} of {type(model).__name__} has no 'mlp' submodule for RMU to update")
            params.extend(mlp.parameters())
        return params

    def direction(self, d: int) -> "Tensor":
        """u: a fixed random unit vector of size d, uniform in [0, 1)^d then normalised (the authors'
        ``torch.rand``), seeded by ``config.seed``."""
        import torch

        if self._u is None or self._u.shape[0] != d:
            u = torch.rand(d, generator=torch.Generator().manual_seed(self.config.seed))
            self._u = u / u.norm()
        return self._u

    def step_loss(self, job: "Job", model, forget: list[int], retain: list[int] | None, ref) -> "Tensor":
        import torch

        from rotelab.core.training import collate

        assert retain is not None and ref is not None, "RMU needs a retain batch and the frozen model"
        l = self.layer(model)
        xf, mf, _ = collate([job.ids["forget"][i] for i in forget], 0)
        xr, mr, _ = collate([job.ids["retain"][i] for i in retain], 0)
        hf = block_output(model, l, xf, mf)  # (B, T, d)
        hr = block_output(model, l, xr, mr)
        with torch.no_grad():
            hr_ref = block_output(ref, l, xr, mr)
        target = self.config.steering_coeff * self.direction(hf.shape[-1]).to(hf)
        return rmu_loss(hf, mf, target, hr, hr_ref, mr, alpha=self.config.retain_weight, gamma=self.config.forget_weight)


class _Stop(Exception):
    """Raised by a hook once it has what it reads: the rest of the forward pass is not run."""


def block_output(model, layer: int, x: "Tensor", mask: "Tensor") -> "Tensor":
    """(B, T, d) output of decoder block ``layer`` (the residual stream after it), read through
    :func:`rotelab.core.hooks.module_hooks`; the blocks above it are not run. No hook outlives the call."""
    from rotelab.core.hooks import find_blocks, module_hooks

    block = find_blocks(model)[layer]
    name = next(n for n, m in model.named_modules() if m is block)
    got: list = []

    def keep(mod, inputs, out):
        got.append(out[0] if isinstance(out, tuple) else out)
        raise _Stop

    with module_hooks(model, {name: keep}):
        try:
            model(input_ids=x, attention_mask=mask)
        except _Stop:
            pass
    return got[0]


def masked_sq_error(h: "Tensor", target: "Tensor", mask: "Tensor") -> "Tensor":
    """Mean over valid tokens (``mask`` (B, T) = 1) of the mean over the d coordinates of (h - target)^2:
    ``torch.nn.functional.mse_loss`` as the RMU authors' code takes it, padding left out."""
    m = mask.to(h.dtype)
    per_token = ((h - target) ** 2).mean(-1)  # (B, T)
    return (per_token * m).sum() / m.sum()


def rmu_loss(hf: "Tensor", mf: "Tensor", target: "Tensor", hr: "Tensor", hr_ref: "Tensor", mr: "Tensor", *, alpha: float, gamma: float = 1.0) -> "Tensor":
    """RMU's objective (Li et al. 2024, eq. 1-2), per token and coordinate as in the authors' code:

        L = gamma * mean_{t in F} |h_l(t) - c u|^2 / d + alpha * mean_{t in R} |h_l(t) - h_l^frozen(t)|^2 / d

    ``target`` = c u (d,); ``hf``/``hr`` (B, T, d) with masks ``mf``/``mr`` (B, T).

    >>> import torch
    >>> h, m = torch.ones(1, 2, 2), torch.tensor([[1, 0]])
    >>> float(rmu_loss(h, m, torch.zeros(2), h, h * 0, m, alpha=10.0))  # 1 + 10 * 1
    11.0
    """
    return gamma * masked_sq_error(hf, target, mf) + alpha * masked_sq_error(hr, hr_ref, mr)


# TOFU's refusals (Maini et al. 2024, ``idontknow.jsonl``), a few of its phrasings
IDK_ANSWERS = (
    "I don't know.",
    "I'm not sure about that.",
    "I don't have that information.",
    "That's beyond what I know.",
    "I have no idea.",
    "I can't answer that.",
    "I'm not certain about that.",
    "I haven't learned about that.",
)


@METHODS.register("idkpo")
class IdkPO(GradDiff):
    """IdkPO (OpenUnlearning's IdkDPO; Maini et al. 2024 TOFU, Zhang et al. 2024): DPO preferring a
    refusal ("I don't know.") to the forget fact's true answer after its question, plus alpha NLL(R)."""

    needs_reference = True
    lr = 1e-3

    def __init__(self, config: "UnlearnConfig"):
        import random

        super().__init__(config)
        self._rng = random.Random(config.seed + 11)  # which refusal each sampled fact gets
        self._pairs: list | None = None

    def check(self, testbed: "Testbed") -> None:
        from rotelab.testbed.splits import read_split

        for i, row in enumerate(read_split(testbed.root, "forget"), 1):
            a = row.get("answer")
            if not (isinstance(a, str) and a.strip() and row["text"].endswith(a) and len(a) < len(row["text"])):
                raise RotelabError(f"{testbed.root / 'splits' / 'forget.jsonl'}: row {i}: field 'answer' must be a non-empty string ending 'text' after a question ('idkpo' prefers a refusal to it)")

    def pairs(self, job: "Job") -> list[tuple[list[int], int, list[tuple[list[int], int]]]]:
        """Per forget row: its token ids and answer start, and each refusal's (ids, start) after the same question."""
        from rotelab.core.signals import answer_start

        if self._pairs is None:
            tok, L = job.tokenizer, job.max_length
            prompts = [r["text"][: len(r["text"]) - len(r["answer"])] for r in job.rows["forget"]]
            pre = tok(prompts)["input_ids"]
            idk = [x[:L] for x in tok([p + a for p in prompts for a in IDK_ANSWERS])["input_ids"]]
            k = len(IDK_ANSWERS)
            self._pairs = [
                (ids, answer_start(ids, p), [(x, answer_start(x, p)) for x in idk[j * k : (j + 1) * k]])
                for j, (ids, p) in enumerate(zip(job.ids["forget"], pre))
            ]
        return self._pairs

    def step_loss(self, job: "Job", model, forget: list[int], retain: list[int] | None, ref) -> "Tensor":
        import torch

        from rotelab.core.training import collate
        from rotelab.testbed.unlearn import seq_logprob

        assert retain is not None and ref is not None, "IdkPO needs a retain batch and the frozen model"
        pairs = self.pairs(job)
        win = [self._rng.choice(pairs[i][2]) for i in forget]
        lose = [pairs[i][:2] for i in forget]

        def logps(seqs):
            x, mask, _ = collate([s for s, _ in seqs], 0)
            start = torch.tensor([k for _, k in seqs])
            lp, _ = seq_logprob(model, x, mask, start)
            with torch.no_grad():
                lp_ref, _ = seq_logprob(ref, x, mask, start)
            return lp, lp_ref

        (w, w_ref), (l, l_ref) = logps(win), logps(lose)
        rb = job.batch(model, [job.ids["retain"][i] for i in retain])
        return self.config.forget_weight * idkpo_loss(w, w_ref, l, l_ref, self.config.beta) + self.retain_loss(rb)


def idkpo_loss(win: "Tensor", win_ref: "Tensor", lose: "Tensor", lose_ref: "Tensor", beta: float) -> "Tensor":
    """DPO (Rafailov et al. 2023) as OpenUnlearning's IdkDPO scales it, the refusal preferred:

        -(2/beta) E_F[log sigmoid(beta ((log pi(y_idk|x) - log pi_ref(y_idk|x)) - (log pi(y_f|x) - log pi_ref(y_f|x))))]

    (summed answer-token log-probs, (B,) each).

    >>> import torch
    >>> z = torch.zeros(1)
    >>> round(float(idkpo_loss(z, z, z, z, 0.1)), 4)  # (2/0.1) log 2
    13.8629
    """
    import torch.nn.functional as F

    return -(2.0 / beta) * F.logsigmoid(beta * ((win - win_ref) - (lose - lose_ref))).mean()
