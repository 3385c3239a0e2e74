"""Verification during unlearning: cheap membership figures every N steps, to pick the checkpoint
where forgetting is real and the retain loss still acceptable.

At each logged step, on the model being trained, from one signal pass (:mod:`rotelab.core.signals`)
over the forget, holdout and retain samples:

    loss_auc   forgotten-vs-holdout AUC of the loss attack (-NLL, Yeom et al. 2018), 95% bootstrap interval
    mink_auc   the same for Min-K% (Shi et al. 2024, k = 0.2)
    *_loss     mean per-sample token NLL of forget, retain and holdout

AUC = P(score_forget > score_holdout): 0.5 is what a never-trained set gives; intervals are
percentile bootstraps with forgotten and holdout resampled separately
(:func:`rotelab.verify.metrics.auc_excess_p`). ``loss_auc_detects``: the interval's lower end
exceeds 0.5 + delta (delta = 0.05), the rule a verification's verdict uses for one attack (without
the Holm correction across attacks).

Two hosts: :class:`VerifyEvery` for the testbed's unlearning loop (``rotelab testbed unlearn
--verify-every N``; entries in ``unlearn.json`` as ``verify_log``, figure
``figures/unlearning_verify.png``) and :class:`VerifyCallback` for a Hugging Face ``Trainer``
(entries in ``state.log_history``, hence ``trainer_state.json``, and a JSONL file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from transformers import TrainerCallback

from rotelab.testbed.unlearn import MONITORS, StepCallback

if TYPE_CHECKING:
    from rotelab.core.runs import RunFolder
    from rotelab.testbed.unlearn import Job

DELTA = 0.05


def figures(model, tokenizer, ids: Mapping[str, Sequence[Sequence[int]]], *, n_boot: int = 1000, seed: int = 0, k: float = 0.2, batch_size: int = 32) -> dict[str, Any]:
    """The verification figures of ``model`` on token-id lists ``ids`` (``forget`` and ``holdout``
    required, ``retain`` optional); the model's train/eval mode is restored afterwards."""
    from rotelab.core.batching import map_sorted
    from rotelab.core.models import HFLanguageModel
    from rotelab.membership.attacks.pointwise import loss_score, mink_score
    from rotelab.verify.metrics import auc_excess_p

    was_training = model.training
    try:
        lm = HFLanguageModel(model, tokenizer, name="in training", fingerprint="in-training")  # no hash of weights that change
        sig = {s: map_sorted(lm.forward_signals, [list(x)[: lm.max_length] for x in v], batch_size=batch_size) for s, v in ids.items()}
    finally:
        model.train(was_training)
    out: dict[str, Any] = {f"{s}_loss": float(np.mean([g.nll for g in v])) for s, v in sig.items()}
    for name, score in (("loss", loss_score), ("mink", lambda g: mink_score(g, k=k))):
        pos, neg = (np.array([score(g) for g in sig[s]]) for s in ("forget", "holdout"))
        r = auc_excess_p(pos, neg, delta=DELTA, n_boot=n_boot, seed=seed)
        out[f"{name}_auc"], out[f"{name}_auc_ci"] = r["auc"], r["auc_ci"]
    out["loss_auc_detects"] = out["loss_auc_ci"][0] > 0.5 + DELTA
    out |= {"n_forget": len(sig["forget"]), "n_holdout": len(sig["holdout"]), "n_boot": n_boot, "seed": seed}
    return out


def plot_verify_log(entries: list[dict[str, Any]], title: str):
    """Figure: the two AUCs with their 95% intervals, and the three losses, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in entries]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, label, c in (("loss_auc", "loss attack", "#cc3311"), ("mink_auc", "Min-K% (k 0.2)", "#0077bb")):
        a.plot(steps, [e[key] for e in entries], marker="o", ms=3, color=c, label=label)
        a.fill_between(steps, [e[f"{key}_ci"][0] for e in entries], [e[f"{key}_ci"][1] for e in entries], color=c, alpha=0.2)
    a.axhline(0.5, color="grey", lw=0.8, ls="--")
    a.axhline(0.5 + DELTA, color="grey", lw=0.8, ls=":")
    e0 = entries[0]
    a.set(xlabel="step", ylabel="forgotten-vs-holdout AUC", ylim=(0, 1.02),
          title=f"n = {e0['n_forget']} forget / {e0['n_holdout']} holdout; 95% CI ({e0['n_boot']} boot., seed {e0['seed']})")
    a.title.set_fontsize(8)
    a.legend(fontsize=8)
    for key, c in (("forget", "#cc3311"), ("retain", "#0077bb"), ("holdout", "#009988")):
        if f"{key}_loss" in e0:
            b.plot(steps, [e[f"{key}_loss"] for e in entries], color=c, label=key)
    b.set(xlabel="step", ylabel="mean NLL (nats / token)", title=title)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


@MONITORS.register("verify")
class VerifyEvery(StepCallback):
    """For :meth:`rotelab.testbed.unlearn.Job.ascend`: the figures every ``every`` steps (and before
    the first) on the whole forget and holdout splits and the loop's fixed retain subset."""

    name = "verify_log"

    def __init__(self, every: int, *, n_boot: int = 1000, seed: int = 0):
        self.every, self.n_boot, self.seed = every, n_boot, seed

    def on_step(self, job: "Job", step: int, model) -> dict[str, Any] | None:
        if step % self.every:
            return None
        ids = {"forget": job.ids["forget"], "holdout": job.ids["holdout"], "retain": job.eval_ids["retain"]}
        return figures(model, job.tokenizer, ids, n_boot=self.n_boot, seed=self.seed)

    def finish(self, run: "RunFolder", entries: list[dict[str, Any]], result: dict[str, Any]) -> None:
        if entries:
            run.figure("unlearning_verify", plot_verify_log(entries, f"Unlearning: {result.get('method')}, every {self.every} steps"))


class VerifyCallback(TrainerCallback):
    """A ``transformers.TrainerCallback``: the figures before training and every ``every`` steps.

    ``forget`` / ``holdout`` (/ ``retain``): texts or token-id lists (texts are tokenized with
    ``tokenizer``, else the trainer's ``processing_class``). Each entry (keys ``verify/<figure>``
    and ``step``) is appended to ``state.log_history`` (saved in ``trainer_state.json``), to
    :attr:`log`, and as one line to ``out`` (a JSONL file, started afresh when training starts at step 0) when given.

    >>> # trainer = Trainer(..., callbacks=[VerifyCallback.from_testbed("runs/tb", every=20, out="verify.jsonl")])
    """

    def __init__(self, forget: Sequence, holdout: Sequence, retain: Sequence | None = None, *, every: int = 50, tokenizer=None,
                 out: Path | str | None = None, n_boot: int = 1000, seed: int = 0):
        from rotelab.errors import RotelabError

        if not (isinstance(every, int) and every >= 1):
            raise RotelabError(f"every must be an integer >= 1; got {every}")
        for name, s in (("forget", forget), ("holdout", holdout)):
            if len(s) < 2:
                raise RotelabError(f"VerifyCallback: {name} needs at least 2 samples; got {len(s)}")
        self.sets = {"forget": list(forget), "holdout": list(holdout)} | ({"retain": list(retain)} if retain else {})
        self.every, self.tokenizer, self.n_boot, self.seed = every, tokenizer, n_boot, seed
        self.out = Path(out) if out is not None else None
        self.log: list[dict[str, Any]] = []
        self._ids: dict[str, list[list[int]]] | None = None

    @classmethod
    def from_testbed(cls, testbed: Path | str, *, every: int = 50, retain_samples: int = 256, **kw) -> "VerifyCallback":
        """Forget, holdout and (a seeded random subset of ``retain_samples`` of) retain texts of a testbed folder, with its tokenizer."""
        import random

        from transformers import PreTrainedTokenizerFast

        from rotelab.testbed.splits import read_split
        from rotelab.testbed.unlearn import check_testbed

        tb = check_testbed(testbed)

        texts = {s: [r["text"] for r in read_split(tb.root, s)] for s in ("forget", "holdout", "retain")}
        retain = random.Random(kw.get("seed", 0) + 7).sample(texts["retain"], min(retain_samples, len(texts["retain"])))
        kw.setdefault("tokenizer", PreTrainedTokenizerFast.from_pretrained(tb.model))
        return cls(texts["forget"], texts["holdout"], retain, every=every, **kw)

    def _token_ids(self, tokenizer) -> dict[str, list[list[int]]]:
        if self._ids is None:
            self._ids = {s: tokenizer(v)["input_ids"] if v and isinstance(v[0], str) else [list(x) for x in v] for s, v in self.sets.items()}
        return self._ids

    def _record(self, state, model, tokenizer, *, fresh: bool = False) -> None:
        tok = self.tokenizer or tokenizer
        fig = figures(model, tok, self._token_ids(tok), n_boot=self.n_boot, seed=self.seed)
        entry = {"step": state.global_step, **{f"verify/{k}": v for k, v in fig.items()}}
        state.log_history.append(entry)
        self.log.append(entry)
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            with self.out.open("w" if fresh else "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
        self._record(state, model, processing_class, fresh=state.global_step == 0)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
        if state.global_step % self.every == 0:
            self._record(state, model, processing_class)
