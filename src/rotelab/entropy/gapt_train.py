"""A training loop for any transformers causal LM with objective ``ce`` or ``gapt``.

Each step: forward with hidden states, CE from the model, MBE of the chosen block's output
(``rotate``: one middle block per step; ``all_middle``: their mean), the gate decides the phase,
loss = CE (phase 1) or CE + w·MBE (phase 2). With ``ce`` the same MBE is computed and logged but
never enters the loss, so both objectives log identical quantities. AdamW, gradient clip 1.0,
the warm-up + cosine schedule of :func:`rotelab.core.training.lr_at`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

import torch

from rotelab.entropy.gapt import COMPRESS, Gate, GateConfig, compress_loss, middle_layers, rotate_layer
from rotelab.entropy.mbe import patch_mbe
from rotelab.core.training import TrainSpec, lr_at
from rotelab.errors import RotelabError

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input_ids, attention_mask, labels: (B, T)


@dataclass(frozen=True)
class GaptConfig:
    objective: Literal["ce", "gapt"] = "gapt"
    steps: int = 500
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    mbe_weight: float = 1.0  # w
    patch: int = 8
    layers: Literal["rotate", "all_middle"] = "rotate"
    smooth: bool = False  # softplus form of the phase-2 term
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if self.objective not in ("ce", "gapt"):
            raise ValueError(f"objective must be 'ce' or 'gapt'; got '{self.objective}'")
        if self.layers not in ("rotate", "all_middle"):
            raise ValueError(f"layers must be 'rotate' or 'all_middle'; got '{self.layers}'")

    def validate(self) -> None:
        """One line naming the command's option for a value out of range."""
        if self.steps < 1:
            raise RotelabError(f"--steps must be >= 1; got {self.steps}")
        if not self.lr > 0:
            raise RotelabError(f"--lr must be > 0; got {self.lr}")
        if self.warmup_steps < 0:
            raise RotelabError(f"warmup_steps must be >= 0; got {self.warmup_steps}")
        if not self.mbe_weight >= 0:
            raise RotelabError(f"--mbe-weight must be >= 0; got {self.mbe_weight}")
        if self.patch < 2:
            raise RotelabError(f"--patch must be >= 2; got {self.patch}")
        self.gate.validate()


def step_mbe(hidden: tuple[torch.Tensor, ...], mask: torch.Tensor, step: int, cfg: GaptConfig) -> tuple[torch.Tensor, int]:
    """The MBE term of one step and the block it came from (-1 for the middle-block mean)."""
    n = len(hidden) - 1  # hidden[0] is the embedding output
    if cfg.layers == "rotate":
        layer = rotate_layer(step, n)
        return patch_mbe(hidden[layer], patch=cfg.patch, mask=mask), layer
    return torch.stack([patch_mbe(hidden[i], patch=cfg.patch, mask=mask) for i in middle_layers(n)]).mean(), -1


def train_gapt(
    model,
    next_batch: Callable[[int], Batch],
    cfg: GaptConfig,
    *,
    progress: bool = True,
    label: str = "training",
    on_log: Callable[[dict[str, Any]], None] | None = None,
    log_every: int = 50,
) -> dict[str, Any]:
    """Train ``model`` for ``cfg.steps`` steps on ``next_batch(step)``.

    Returns ``{"steps": [...per-step phase, ce, mbe, layer, counters...], "switches": [...],
    "log": [...entries every log_every steps...], "seconds", "tokens"}``.
    """
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from rotelab.core.console import progress as bar_

    spec = TrainSpec(lr=cfg.lr, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    gate = Gate(cfg.gate)
    steps: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    tokens, t0 = 0, time.time()
    model.train()
    cols = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TextColumn("ce {task.fields[ce]:.3f} phase {task.fields[phase]}"), TimeElapsedColumn()]
    with bar_(*cols, disable=not progress) as bar:
        task = bar.add_task(label, total=cfg.steps, ce=float("nan"), phase=1)
        for step in range(cfg.steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg.steps, spec)
            x, mask, labels = next_batch(step)
            out = model(input_ids=x, attention_mask=mask, labels=labels, output_hidden_states=True)
            mbe, layer = step_mbe(out.hidden_states, mask, step, cfg)
            ce_v, mbe_v = out.loss.item(), mbe.item()
            phase = gate.update(ce_v, mbe_v) if cfg.objective == "gapt" else 1
            loss = compress_loss(out.loss, mbe, weight=cfg.mbe_weight, smooth=cfg.smooth) if phase == COMPRESS else out.loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens += int(mask.sum())
            steps.append({"step": step, "phase": phase, "ce": ce_v, "mbe": mbe_v, "layer": layer, "s_m": gate.s_m, "s_a": gate.s_a})
            if step % log_every == 0 or step == cfg.steps - 1:
                entry = {"step": step, "ce": ce_v, "mbe": mbe_v, "phase": phase, "lr": opt.param_groups[0]["lr"], "tokens": tokens, "seconds": round(time.time() - t0, 1)}
                if on_log:
                    on_log(entry)
                log.append(entry)
            bar.update(task, advance=1, ce=ce_v, phase=phase)
    model.eval()
    return {"steps": steps, "switches": gate.switches, "log": log, "tokens": tokens, "seconds": round(time.time() - t0, 1), "config": asdict(cfg)}


def sequence_batches(token_ids: list[list[int]], batch_size: int, *, seed: int, pad_id: int = 0) -> Callable[[int], Batch]:
    """``next_batch(step)``: shuffled epochs over ``token_ids``, padded by :func:`rotelab.core.training.collate`.

    A step-indexed stream of whole epochs (GAPT trains for a number of steps, not of exposures
    per sample as :func:`rotelab.core.training.schedule` does).
    """
    import random

    from rotelab.core.training import collate

    order: list[int] = []
    rng = random.Random(seed)

    def next_batch(step: int) -> Batch:
        nonlocal order
        while len(order) < batch_size:
            perm = list(range(len(token_ids)))
            rng.shuffle(perm)
            order += perm
        idx, order = order[:batch_size], order[batch_size:]
        return collate([token_ids[i] for i in idx], pad_id)

    return next_batch
