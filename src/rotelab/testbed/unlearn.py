"""Unlearning with ground truth: run a registered method (:mod:`rotelab.testbed.methods`) on a
testbed's forget set and checkpoint it at outcome strengths.

Strengths are defined by outcome, not steps: a checkpoint is saved when the forget loss first
reaches 1.0x and 1.5x the starting model's loss on ``stop_calibration`` (facts of never-trained
people, disjoint from ``holdout``), or at the step cap, recorded as such. Calibrating on the
holdout itself would let the set an evaluation separates the forgotten facts from choose the
checkpoint it evaluates. The forget loss is checked after every step; the full forget / retain /
holdout log every ``eval_every`` steps, with retain and holdout on fixed random subsets of
``eval_samples``.

What the unlearner keeps is every trained sample not forgotten: ``retain`` plus the
``member_prefix_pool`` (trained, set apart only so that no scored set holds it), in training
order; the retrain control trains on the same.

Writes ``model/`` (the strongest checkpoint), ``checkpoints/<strength>/``, ``unlearn.json``
(targets, checkpoints and the step log) and ``figures/unlearning_losses.png``.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from rotelab.core.io import read_json
from rotelab.core.registry import Registry, discover
from rotelab.core.runs import RunFolder
from rotelab.errors import RotelabError
from rotelab.testbed.folder import Testbed
from rotelab.testbed.methods import METHODS, Batch, Method, npo_loss  # noqa: F401  (npo_loss: the objective's home is methods)
from rotelab.testbed.splits import SPLITS, in_training_order, read_split

STRENGTHS = (1.0, 1.5)
STOP_SPLIT = "stop_calibration"  # the split whose loss the strengths are multiples of
LOSS_SPLITS = ("forget", "retain", "holdout", STOP_SPLIT)  # read, each non-empty
SPLITS_USED = (*LOSS_SPLITS, "member_prefix_pool")  # every split an unlearning run reads (its inputs)


@dataclass(frozen=True)
class UnlearnConfig:
    method: str = "npo"
    lr: float = 1e-4
    batch_size: int = 16
    max_steps: int = 1000
    eval_every: int = 10  # full forget/retain/holdout log; the forget loss is checked every step
    beta: float = 0.1  # NPO
    retain_weight: float = 1.0  # alpha
    forget_weight: float = 1.0  # gamma
    seed: int = 0
    eval_samples: int = 256  # retain / holdout losses are logged on a fixed random subset of this size
    layer: int = -1  # RMU: the block l whose output is steered (negative counts from the end)
    steering_coeff: float = 5.0  # RMU: c, the norm of the target activation c u

    def check(self) -> None:
        """One line naming the option for a value out of its range (and an unknown method)."""
        METHODS.get(self.method, option="--method")
        positive = ("lr", "beta", "forget_weight", "steering_coeff")
        at_least_one = ("batch_size", "max_steps", "eval_every", "eval_samples")
        for f in fields(self):
            v = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.name in positive and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise RotelabError(f"{flag} must be a finite number > 0; got {v}")
            if f.name in at_least_one and not (isinstance(v, int) and v >= 1):
                raise RotelabError(f"{flag} must be an integer >= 1; got {v}")
        if not (math.isfinite(self.retain_weight) and self.retain_weight >= 0):
            raise RotelabError(f"--retain-weight must be a finite number >= 0; got {self.retain_weight}")
        if not isinstance(self.layer, int):
            raise RotelabError(f"--layer must be an integer (a block index; negative counts from the end); got {self.layer}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise RotelabError(f"--seed must be an integer >= 0; got {self.seed}")


def seq_logprob(model, x: torch.Tensor, mask: torch.Tensor, start: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: summed token log-prob (B,) and number of predicted tokens (B,); with ``start``
    (B,), only tokens at positions >= start (an answer after its prompt) count."""
    logits = model(input_ids=x, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
    tgt, m = x[:, 1:], mask[:, 1:].float()
    if start is not None:  # logits column j predicts token j + 1
        m = m * (torch.arange(1, x.shape[1])[None, :] >= start[:, None]).float()
    lp = -F.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")  # (B, T-1)
    return (lp * m).sum(-1), m.sum(-1)


@torch.no_grad()
def mean_nll(model, ids: list[list[int]], batch_size: int = 64) -> float:
    """Mean over samples of the per-sample mean token NLL (the loss the strengths refer to)."""
    from rotelab.core.training import collate

    model.eval()
    out = []
    for b in range(0, len(ids), batch_size):
        x, mask, _ = collate(ids[b : b + batch_size], 0)
        s, n = seq_logprob(model, x, mask)
        out.extend((-s / n).tolist())
    return float(sum(out) / len(out))


class StepCallback:
    """Watches :meth:`Job.ascend`: ``on_step`` returns a dict to log at that step, or None.

    It must leave the weights as it found them (the loop sets train mode at each step). Its
    entries are listed in ``unlearn.json`` under ``name``; ``finish`` then sees them all (a figure).
    """

    name = "callback"

    def on_step(self, job: "Job", step: int, model) -> dict[str, Any] | None:
        return None

    def finish(self, run: RunFolder, entries: list[dict[str, Any]], result: dict[str, Any]) -> None:
        """After the run (``entries``: what ``on_step`` returned, each with its ``step``)."""


# Monitors a run can switch on by name (``rotelab testbed unlearn --verify-every N`` is ``verify``).
# They live with the capability that knows the figures (``rotelab.verify.callback``), which depends
# on the testbed, not the other way round: found through each package's ``callback`` module.
MONITORS: Registry[type[StepCallback]] = Registry("unlearning monitor", base=StepCallback, discover=discover("callback"))


# -- checks (before any run folder exists) ---------------------------------------------------------
def check_testbed(path: Path | str) -> Testbed:
    """The testbed at ``path`` (its folder or its ``model/``), with the splits unlearning reads; else one line."""
    p = Path(path)
    if not p.exists():
        raise RotelabError(f"{p}: testbed folder not found")
    tb = Testbed.find(p)
    if tb is None or not (tb.root / "splits" / "forget.jsonl").is_file():
        raise RotelabError(f"{p}: not a testbed folder (needs model/ and splits/; build one with 'rotelab testbed build')")
    if not sorted(tb.model.glob("*.safetensors")):
        raise RotelabError(f"{tb.model}: no weights (*.safetensors) in the testbed's model folder")
    if not (tb.model / "tokenizer.json").is_file():
        raise RotelabError(f"{tb.model}: no tokenizer.json in the testbed's model folder")
    for name in (STOP_SPLIT, "member_prefix_pool"):
        if not (tb.root / "splits" / f"{name}.jsonl").is_file():
            raise RotelabError(_rebuild_message(tb, name))
    for name in LOSS_SPLITS:
        if not read_split(tb.root, name):
            raise RotelabError(f"{tb.root / 'splits' / f'{name}.jsonl'}: the split is empty")
    return tb


def _rebuild_message(tb: Testbed, name: str) -> str:
    """One line for a testbed built before ``splits/<name>.jsonl`` existed: rebuild it (same model)."""
    try:
        m = read_json(tb.root / "manifest.json")
        preset, seed = m["preset"]["name"], m.get("seed") or 0
    except (OSError, ValueError, KeyError, TypeError):
        preset, seed = "PRESET", "SEED"
    return (f"{tb.root / 'splits' / f'{name}.jsonl'}: missing (a testbed built before the stop-calibration split; the unlearning stop "
            f"must not be calibrated on the holdout it is evaluated on): rebuild it with 'rotelab testbed build --preset {preset} --seed {seed} "
            f"--out {tb.root} --overwrite' (the trained model comes out byte-identical)")


def validate(testbed: Path | str, config: UnlearnConfig) -> tuple[Testbed, Method]:
    """Check the options, the testbed and what the method needs of it; the testbed and the method."""
    config.check()
    tb = check_testbed(testbed)
    method = METHODS.get(config.method).obj(config)
    method.check(tb)
    return tb, method


def testbed_inputs(tb: Testbed) -> dict[str, Path]:
    """The files an unlearning run reads, hashed into its identity: a changed testbed is not resumed."""
    files = {name: tb.root / "splits" / f"{name}.jsonl" for name in SPLITS_USED}
    files |= {f"model/{f.name}": f for f in sorted(tb.model.glob("*.safetensors"))}
    files |= {f"model/{n}": tb.model / n for n in ("config.json", "tokenizer.json")}
    return files


# -- the run -----------------------------------------------------------------------------------------
class Job:
    """One unlearning run: the testbed's tokenized splits and the run folder, what a method works with."""

    def __init__(self, testbed: Path, config: UnlearnConfig, run: RunFolder, *, progress: bool = True, callbacks: "Sequence[StepCallback]" = ()):
        from transformers import AutoConfig, PreTrainedTokenizerFast

        self.testbed, self.config, self.run, self.progress, self.callbacks = Path(testbed), config, run, progress, list(callbacks)
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(self.testbed / "model")
        self.max_length = L = AutoConfig.from_pretrained(self.testbed / "model").n_positions
        self.rows = {k: read_split(self.testbed, k) for k in LOSS_SPLITS}
        self.rows["retain"] = in_training_order(self.rows["retain"], read_split(self.testbed, "member_prefix_pool"))
        self.ids = {k: [x[:L] for x in self.tokenizer([r["text"] for r in v])["input_ids"]] for k, v in self.rows.items()}
        pick = random.Random(config.seed + 7)
        self.eval_ids = {k: pick.sample(self.ids[k], min(config.eval_samples, len(self.ids[k]))) for k in ("retain", "holdout")}

    @property
    def testbed_manifest(self) -> dict[str, Any]:
        return read_json(self.testbed / "manifest.json")

    def mean_nll(self, model, split: str) -> float:
        """Mean NLL of ``model`` over a whole split (``forget``, ``retain``, ``holdout`` or ``stop_calibration``)."""
        return mean_nll(model, self.ids[split])

    def save_model(self, model, name: str) -> Path:
        """Save ``model`` with the testbed's tokenizer as ``<run>/<name>`` (a model folder)."""
        from rotelab.core.training import save_model_dir

        dest = self.run.path / name
        save_model_dir(model, self.tokenizer, dest)
        return dest

    def batch(self, model, ids: list[list[int]], ref=None) -> Batch:
        """The :class:`Batch` of token lists ``ids`` under ``model`` (and the frozen ``ref``, if given)."""
        from rotelab.core.training import collate

        x, mask, _ = collate(ids, 0)
        s, n = seq_logprob(model, x, mask)
        if ref is None:
            return Batch(s, n)
        with torch.no_grad():
            s_ref, _ = seq_logprob(ref, x, mask)
        return Batch(s, n, s_ref)

    def ascend(self, method: Method, callbacks: "Sequence[StepCallback] | None" = None) -> dict[str, Any]:
        """Minimise ``method.step_loss`` until the forget loss reaches each strength (or the step cap).

        Each callback's :meth:`StepCallback.on_step` sees the model before the first step (step 0)
        and after every step; what it returns (a dict, or None) is listed in the result under its ``name``.
        """
        from transformers import AutoModelForCausalLM

        from rotelab.core.console import progress as bar_

        cfg, forget, retain = self.config, self.ids["forget"], self.ids["retain"]
        torch.manual_seed(cfg.seed)
        model = AutoModelForCausalLM.from_pretrained(self.testbed / "model")
        ref = copy.deepcopy(model).eval().requires_grad_(False) if method.needs_reference else None
        callbacks = self.callbacks if callbacks is None else list(callbacks)
        cb_logs: dict[str, list[dict]] = {cb.name: [] for cb in callbacks}

        def fire(step: int) -> None:
            for cb in callbacks:
                entry = cb.on_step(self, step, model)
                if entry is not None:
                    cb_logs[cb.name].append({"step": step, **entry})

        base = {"forget": mean_nll(model, forget), "retain": mean_nll(model, self.eval_ids["retain"]), "holdout": mean_nll(model, self.ids["holdout"])}
        stop = {"split": STOP_SPLIT, "n_samples": len(self.ids[STOP_SPLIT]), "loss": mean_nll(model, self.ids[STOP_SPLIT])}
        targets = {f"{s:.1f}x": s * stop["loss"] for s in STRENGTHS}
        params = method.trainable(model)
        keep = {id(p) for p in params}
        for p in model.parameters():  # the others get no gradient at all
            p.requires_grad_(id(p) in keep)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        rng = random.Random(cfg.seed)
        log = [{"step": 0, **base}]
        saved: dict[str, dict] = {}
        step = 0
        fire(0)
        with bar_(disable=not self.progress) as bar:
            task = bar.add_task(f"unlearning ({cfg.method})", total=cfg.max_steps)
            while step < cfg.max_steps and len(saved) < len(targets):
                model.train()
                fi = rng.sample(range(len(forget)), min(cfg.batch_size, len(forget)))
                ri = rng.sample(range(len(retain)), min(cfg.batch_size, len(retain))) if method.uses_retain else None
                loss = method.step_loss(self, model, fi, ri, ref)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                step += 1
                bar.advance(task)
                f_loss = mean_nll(model, forget)
                crossed = [name for name, target in targets.items() if name not in saved and f_loss >= target]
                if crossed or step % cfg.eval_every == 0 or step == cfg.max_steps:
                    cur = {"step": step, "forget": f_loss, "retain": mean_nll(model, self.eval_ids["retain"]), "holdout": mean_nll(model, self.eval_ids["holdout"])}
                    log.append(cur)
                    for name in crossed:
                        self.save_model(model, f"checkpoints/{name}")
                        saved[name] = cur | {"target_forget_loss": targets[name], "reached": True}
                fire(step)
        if len(saved) < len(targets):  # step cap: keep the last state as the strongest, say so
            self.save_model(model, "checkpoints/cap")
            saved["cap"] = log[-1] | {"reached": False, "note": f"forget loss never reached {max(targets.values()):.3f} within {cfg.max_steps} steps"}
        strongest = list(saved)[-1]
        self.save_model(model if strongest == "cap" else AutoModelForCausalLM.from_pretrained(self.run.path / "checkpoints" / strongest), "model")
        return {"method": cfg.method, "base_losses": base, "stop_calibration": stop, "targets": targets, "checkpoints": saved, "strongest": strongest, "steps": step, "log": log} | cb_logs


def unlearn(testbed: Path | str, config: UnlearnConfig, run: RunFolder, *, progress: bool = True, callbacks: Sequence[StepCallback] = ()) -> dict[str, Any]:
    """Run ``config.method`` on a testbed into ``run``; returns ``unlearn.json``'s content (with its
    log, and each callback's entries under its name).

    The engine under :func:`rotelab.testbed.api.unlearn`, which also validates before it opens
    the run folder and declares the testbed's files as the run's inputs.
    """
    from rotelab.testbed.report import plot_unlearning

    tb, method = validate(testbed, config)
    root = tb.root.resolve()
    run.manifest["testbed"] = str(root)
    run.manifest["splits"] = {k: str(root / "splits" / f"{k}.jsonl") for k in SPLITS}
    run.manifest["config"] = asdict(config)
    run.save_manifest()
    result = method.run(Job(root, config, run, progress=progress, callbacks=callbacks))
    run.write_json("unlearn.json", result)
    if "log" in result:
        plot_unlearning(run, result)
    for cb in callbacks:
        cb.finish(run, result.get(cb.name, []), result)
    return result
