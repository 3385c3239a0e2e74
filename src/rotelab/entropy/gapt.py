"""Gated Phase Transition (GAPT): when to memorise (loss = CE) and when to compress (CE + w·MBE).

Phase 1 (memorise) lasts until CE plateaus; phase 2 (compress) lasts until MBE plateaus or CE
spikes. Two gating rules from the author's code (fangyuan-ksgk/mod_gpt), selected by ``variant``:

relative (current code; running minima never reset), gain g(L, m) = (m − L) / max(|m|, 1e-6), 0 while m = ∞:
    φ=1: s_m ← 0 if g_CE > τ_m else s_m + 1;  s_m ≥ p_m → φ=2
    φ=2: g_CE < −τ_spike → φ=1;  else s_a ← 0 if g_MBE > τ_a else s_a + 1;  s_a ≥ p_a → φ=1
absolute (paper-era; minima reset on entering phase 2):
    φ=1: s_m ← 0 if E_min − CE > δ else s_m + 1;  s_m ≥ p_m → φ=2, E_min = M_min = ∞
    φ=2: CE > E_min·(1 + τ_spike) → φ=1;  else s_c ← 0 if M_min − MBE > δ else s_c + 1;  s_c ≥ p_a → φ=1

Gains are taken before the minima are updated; a switch applies to the loss of the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from rotelab.errors import RotelabError

MEMORISE, COMPRESS = 1, 2


@dataclass(frozen=True)
class GateConfig:
    variant: Literal["relative", "absolute"] = "relative"
    p_m: int = 125  # CE patience (steps without a gain > τ_m)
    tau_m: float = 0.01
    p_a: int = 75  # MBE patience
    tau_a: float = 0.01
    tau_spike: float = 0.1
    delta: float = 0.01  # absolute variant: improvement threshold δ (the paper's value was not found)

    def __post_init__(self) -> None:
        if self.variant not in ("relative", "absolute"):
            raise ValueError(f"variant must be 'relative' or 'absolute'; got '{self.variant}'")

    def validate(self) -> None:
        """One line naming the command's option for a value out of range."""
        for opt, v in (("--p-m", self.p_m), ("--p-a", self.p_a)):
            if v < 1:
                raise RotelabError(f"{opt} must be >= 1; got {v}")
        for opt, v in (("--tau-m", self.tau_m), ("--tau-a", self.tau_a), ("--tau-spike", self.tau_spike), ("delta", self.delta)):
            if not v >= 0:
                raise RotelabError(f"{opt} must be >= 0; got {v}")


def gain(loss: float, best: float) -> float:
    """Relative improvement (best − loss) / max(|best|, 1e-6); 0 before any minimum exists."""
    return 0.0 if math.isinf(best) else (best - loss) / max(abs(best), 1e-6)


@dataclass
class Gate:
    """The GAPT state machine. Call :meth:`update` once per step with that step's CE and MBE."""

    cfg: GateConfig = field(default_factory=GateConfig)
    phase: int = MEMORISE
    step: int = 0
    ce_min: float = math.inf
    mbe_min: float = math.inf
    s_m: int = 0  # steps since CE last improved enough (phase 1)
    s_a: int = 0  # steps since MBE last improved enough (phase 2)
    switches: list[dict[str, Any]] = field(default_factory=list)

    def _switch(self, to: int, reason: str) -> None:
        self.switches.append({"step": self.step, "to_phase": to, "reason": reason})
        self.phase = to

    def update(self, ce: float, mbe: float) -> int:
        """Advance one step; returns the phase whose loss this step uses."""
        if self.cfg.variant == "relative":
            self._relative(ce, mbe)
        else:
            self._absolute(ce, mbe)
        self.step += 1
        return self.phase

    def _relative(self, ce: float, mbe: float) -> None:
        c = self.cfg
        g_ce, g_mbe = gain(ce, self.ce_min), gain(mbe, self.mbe_min)
        if self.phase == MEMORISE:
            self.s_m = 0 if g_ce > c.tau_m else self.s_m + 1
            if self.s_m >= c.p_m:
                self.s_m = 0
                self._switch(COMPRESS, "ce_plateau")
        elif g_ce < -c.tau_spike:
            self.s_a = 0
            self._switch(MEMORISE, "ce_spike")
        else:
            self.s_a = 0 if g_mbe > c.tau_a else self.s_a + 1
            if self.s_a >= c.p_a:
                self.s_a = 0
                self._switch(MEMORISE, "mbe_plateau")
        self.ce_min, self.mbe_min = min(self.ce_min, ce), min(self.mbe_min, mbe)

    def _absolute(self, ce: float, mbe: float) -> None:
        c = self.cfg
        if self.phase == MEMORISE:
            self.s_m = 0 if self.ce_min - ce > c.delta else self.s_m + 1
            self.ce_min = min(self.ce_min, ce)
            if self.s_m >= c.p_m:
                self.s_m = 0
                self.ce_min = self.mbe_min = math.inf  # the spike test looks only within the phase
                self._switch(COMPRESS, "ce_plateau")
            return
        if ce > self.ce_min * (1 + c.tau_spike):
            self.s_a = 0
            self._switch(MEMORISE, "ce_spike")
            return
        self.s_a = 0 if self.mbe_min - mbe > c.delta else self.s_a + 1
        self.ce_min, self.mbe_min = min(self.ce_min, ce), min(self.mbe_min, mbe)
        if self.s_a >= c.p_a:
            self.s_a = 0
            self._switch(MEMORISE, "mbe_plateau")

    def state(self) -> dict[str, Any]:
        return {"phase": self.phase, "s_m": self.s_m, "s_a": self.s_a, "ce_min": self.ce_min, "mbe_min": self.mbe_min}


def middle_layers(n_layers: int) -> list[int]:
    """Block indices 1..n (hidden_states numbering) without the first and last block.

    The author's schedules skip both; models with fewer than 3 blocks have no middle, so every
    block is used instead.
    """
    mid = list(range(2, n_layers))
    return mid or list(range(1, n_layers + 1))


def rotate_layer(step: int, n_layers: int) -> int:
    """The ``rotate`` policy: one middle block per step, cycling."""
    mid = middle_layers(n_layers)
    return mid[step % len(mid)]


def compress_loss(ce: Tensor, mbe: Tensor, *, weight: float = 1.0, floor: float = 1e-5, smooth: bool = False) -> Tensor:
    """Phase-2 loss: CE + max(w·MBE, c), or the smooth CE + c + 0.1·softplus((w·MBE − c)/0.1).

    A non-finite result falls back to CE, as in the author's code.
    """
    reg = floor + 0.1 * torch.nn.functional.softplus((weight * mbe - floor) / 0.1) if smooth else torch.clamp(weight * mbe, min=floor)
    loss = ce + reg
    return loss if torch.isfinite(loss) else ce
