"""Dynamic Mode Steering (Zhang 2025, arXiv 2510.22099; reconstruction, no code was published).

At every steered position t the residual stream of the chosen blocks is moved along a steering
vector v (default: difference of means mu_gen - mu_mem at the probe's block, so alpha = 1 moves a
memorizing activation by one class-mean distance toward generalizing):

    h_t <- h_t + alpha_t * v

with the strength, from the probe score p_mem(h_t) = sigmoid(w . h_t + b) read at the probe block
*before* the edit,

    static   alpha_t = alpha
    dynamic  alpha_t = alpha * p_mem(h_t)                       (DMS)
    gated    alpha_t = alpha * 1[p_mem(h_t) > tau]              (GSS, arXiv 2602.08901)

and optionally self-contrastive logits (beta > 0), on the plausible set {v : p_s(v) >= lambda max p_s}:

    z = z_s + beta_t * (z_s - z_b),   beta_t = beta * p_mem(h_t)

(z_s steered, z_b unsteered logits). By default the last prompt token and every generated token
are steered (the last prompt token predicts the first new token: no off-by-one, nrimsky/CAA #3).
Every position's alpha_t and p_mem are logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from rotelab.core.batching import map_sorted
from rotelab.core.generate import DecodeHook, StepInputs, cache_kw, decode, keep_last_logits
from rotelab.core.hooks import hooked
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.steering.probe import Probe

MODES = ("none", "static", "dynamic", "gated")
DIRECTIONS = ("diffmean", "probe", "random")


@dataclass(frozen=True)
class SteerConfig:
    """How to steer. ``alpha`` is alpha (static) or alpha_max (dynamic, gated), in units of |mu_gen - mu_mem|."""

    mode: str = "dynamic"
    alpha: float = 2.0
    tau: float = 0.5  # gated: steer only where p_mem > tau
    beta: float = 0.0  # self-contrast strength; 0 = pure activation steering
    plausibility: float = 0.1  # contrastive: keep tokens with p_s >= plausibility * max p_s
    direction: str = "diffmean"  # diffmean: mu_gen - mu_mem | probe: -w/|w| | random (control); all |mu_gen - mu_mem| long
    layers: tuple[int, ...] | None = None  # steered blocks (default: the probe's block); none before it
    steer_prompt: bool = False  # also steer every prompt token, not only the last one

    def validate(self) -> None:
        if not np.isfinite(self.alpha):
            raise RotelabError(f"--alpha must be a finite number; got {self.alpha}")
        if self.mode not in MODES:
            raise RotelabError(f"--mode must be one of {', '.join(MODES)}; got '{self.mode}'")
        if self.direction not in DIRECTIONS:
            raise RotelabError(f"--direction must be one of {', '.join(DIRECTIONS)}; got '{self.direction}'")
        if not 0.0 <= self.tau <= 1.0:
            raise RotelabError(f"--tau must be in [0, 1]; got {self.tau}")
        if self.beta < 0:
            raise RotelabError(f"--beta must be >= 0; got {self.beta}")
        if not 0.0 <= self.plausibility <= 1.0:
            raise RotelabError(f"--plausibility must be in [0, 1]; got {self.plausibility}")


def strength(p: torch.Tensor, cfg: SteerConfig) -> torch.Tensor:
    """alpha_t from p_mem (any shape).

    >>> strength(torch.tensor([0.2, 0.8]), SteerConfig(mode="gated", alpha=3.0, tau=0.5)).tolist()
    [0.0, 3.0]
    """
    if cfg.mode == "static":
        return torch.full_like(p, cfg.alpha)
    if cfg.mode == "dynamic":
        return cfg.alpha * p
    if cfg.mode == "gated":
        return cfg.alpha * (p > cfg.tau).to(p.dtype)
    return torch.zeros_like(p)


@dataclass
class Trace:
    """Per-column logs of one batch: p_mem and alpha_t (B, C); NaN where nothing was computed."""

    p: torch.Tensor
    alpha: torch.Tensor
    start: int = 0  # first steered column
    p_call: torch.Tensor | None = field(default=None, repr=False)  # (B, T) of the current forward

    @classmethod
    def empty(cls, B: int, C: int, start: int) -> "Trace":
        nan = torch.full((B, C), float("nan"))
        return cls(nan.clone(), nan.clone(), start)


class Steering:
    """A probe + steering config ready to hook: ``with steering.attach(lm) as hk: ...``."""

    def __init__(self, probe: "Probe", cfg: SteerConfig, *, vector: np.ndarray | None = None):
        cfg.validate()
        self.probe, self.cfg = probe, cfg
        self.layers = tuple(cfg.layers) if cfg.layers else (probe.layer,)
        if min(self.layers) < probe.layer:
            raise RotelabError(f"steered blocks {self.layers} must not precede the probe's block {probe.layer} (p_mem is read there first)")
        self.vector = probe.direction(cfg.direction) if vector is None else np.asarray(vector, dtype=np.float32)
        self.trace: Trace | None = None

    def _edit(self, layer: int):
        probe, cfg = self.probe, self.cfg
        w = b = v = None

        def edit(h, cols, valid, state):  # h: (B, T, d)
            nonlocal w, b, v
            tr = self.trace
            if w is None:
                w = torch.as_tensor(probe.w, device=h.device, dtype=torch.float32)
                b = float(probe.b)
                v = torch.as_tensor(self.vector, device=h.device, dtype=h.dtype)
            if layer == probe.layer:
                tr.p_call = torch.sigmoid(h.float() @ w + b)  # (B, T)
            p = tr.p_call
            a = strength(p, cfg) * (valid & (cols >= tr.start)[None]).to(p.dtype)  # (B, T)
            if layer == self.layers[0] and cols[-1] < tr.p.shape[1]:
                tr.p[:, cols.cpu()] = p.detach().cpu()
                tr.alpha[:, cols.cpu()] = a.detach().cpu()
            if layer not in self.layers or cfg.mode == "none":
                return None
            return h + a.to(h.dtype)[..., None] * v

        return edit

    def attach(self, lm: "HFLanguageModel", *, blocks: str | None = None):
        """Context manager registering the hooks (removed on exit)."""
        return hooked(lm.model, {l: self._edit(l) for l in sorted({self.probe.layer, *self.layers})}, blocks=blocks or self.probe.blocks)


@dataclass
class Generation:
    """Generated ids per prompt, and per generated token the alpha and p_mem at the position that predicted it."""

    tokens: list[list[int]]
    alpha: list[list[float]]
    p_mem: list[list[float]]


def _contrast(z_s: torch.Tensor, z_b: torch.Tensor, beta_t: torch.Tensor, plausibility: float) -> torch.Tensor:
    """z = z_s + beta_t (z_s - z_b) on {v : p_s(v) >= plausibility * max p_s}, -inf elsewhere."""
    z = z_s + beta_t[:, None] * (z_s - z_b)
    ps = torch.softmax(z_s, -1)
    keep = ps >= plausibility * ps.max(-1, keepdim=True).values
    return z.masked_fill(~keep, float("-inf"))


class SteeringHook(DecodeHook):
    """Steering in the core decoder: activation edits through :meth:`Steering.attach`, the trace
    started per batch, and (``beta > 0``) self-contrastive logits from an unsteered second pass
    with its own KV cache."""

    def __init__(self, steering: Steering, *, use_cache: bool):
        self.st, self.use_cache = steering, use_cache

    def attach(self, lm):
        self.lm = lm
        return self.st.attach(lm)

    def begin(self, rows: int, prompt_len: int, n_new: int) -> None:
        self.Tp, self.n_new, self.past_b = prompt_len, n_new, None
        self.st.trace = Trace.empty(rows, prompt_len + n_new, 0 if self.st.cfg.steer_prompt else prompt_len - 1)

    def logits(self, step: int, z: torch.Tensor, inputs: StepInputs, hk) -> torch.Tensor:
        z = z.float()  # (B, V)
        cfg = self.st.cfg
        if cfg.beta <= 0:
            return z
        model, kw = self.lm.model, cache_kw()
        extra = {kw: self.past_b} if (self.use_cache and self.past_b is not None) else {}
        with hk.pause():
            out_b = model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask, position_ids=inputs.position_ids, use_cache=self.use_cache, **extra, **keep_last_logits(model))
        self.past_b = getattr(out_b, kw) if self.use_cache else None
        beta_t = cfg.beta * self.st.trace.p[:, self.Tp - 1 + step].to(z.device)
        return _contrast(z, out_b.logits[:, -1].float(), beta_t, cfg.plausibility)

    def end(self) -> dict[str, torch.Tensor]:
        cols = slice(self.Tp - 1, self.Tp - 1 + self.n_new)  # column t predicts token t + 1
        return {"alpha": self.st.trace.alpha[:, cols], "p_mem": self.st.trace.p[:, cols]}


def generate(
    lm: "HFLanguageModel",
    prompts: list[list[int]],
    max_new_tokens: int,
    steering: Steering | None = None,
    *,
    use_cache: bool = True,
    batch_size: int = 32,
    progress: bool = False,
) -> Generation:
    """Greedy steered (or plain) decoding through the core decoder
    (:func:`rotelab.core.generate.decode`), ``max_new_tokens`` per prompt, no stop at EOS.

    With ``steering=None`` the tokens equal :func:`rotelab.core.generate.greedy_generate`;
    alpha and p_mem are then NaN.
    """
    hook = SteeringHook(steering, use_cache=use_cache) if steering is not None else None
    label = "steered decoding" if steering else "decoding"
    d = decode(lm, prompts, max_new_tokens, hook=hook, batch_size=batch_size, use_cache=use_cache, progress=progress, label=label)
    toks = d.first()
    if steering is None:
        nan = [[float("nan")] * max_new_tokens for _ in prompts]
        return Generation(toks, nan, [list(r) for r in nan])
    return Generation(toks, [a[0] for a in d.logs["alpha"]], [p[0] for p in d.logs["p_mem"]])


@torch.inference_mode()
def steered_nll(lm: "HFLanguageModel", texts: list[list[int]], steering: Steering | None = None, *, batch_size: int = 32, progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher-forced NLL under steering (every position steered): per text the summed NLL, the
    number of predicted tokens, and the mean alpha_t over its positions (NaN unsteered).
    Texts go through the model in length-sorted batches."""
    from contextlib import nullcontext

    import torch.nn.functional as F

    def batch_nll(batch: list[list[int]]) -> list[tuple[float, int, float]]:
        ids, mask = lm._right_pad(batch)  # (B, T)
        if steering is not None:
            steering.trace = Trace.empty(*ids.shape, 0)
        logits = lm.model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        lp = -F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
        nll = -(lp * mask[:, 1:]).sum(1).cpu().numpy()
        n = mask[:, 1:].sum(1).cpu().numpy()
        alpha = np.full(len(batch), np.nan)
        if steering is not None:
            a = steering.trace.alpha.numpy() * mask.cpu().numpy()  # (B, T); padded columns 0
            alpha = a.sum(1) / mask.sum(1).cpu().numpy()
        return list(zip(nll.tolist(), n.tolist(), alpha.tolist()))

    with steering.attach(lm) if steering else nullcontext():
        rows = map_sorted(batch_nll, texts, batch_size=batch_size, progress=progress, label="steered NLL" if steering else "NLL")
    if not rows:
        return np.zeros(0), np.zeros(0, dtype=int), np.zeros(0)
    nll, n, alpha = (np.array(c) for c in zip(*rows))
    return nll, n.astype(int), alpha
