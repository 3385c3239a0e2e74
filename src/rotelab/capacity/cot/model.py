"""Tiny autoregressive transformers at simulated fixed precision, trained to memorise a
:class:`~rotelab.capacity.cot.data.ReasoningSet` with or without a CoT trace.

Fixed precision (Yu, Gao, Zhang 2025 assume all weights and values at fixed precision) is
simulated by rounding weights and activations (embeddings, attention outputs, MLP outputs,
logits) in every forward pass, with a straight-through gradient so that training sees the
rounding too: ``q(x) = x + (round(x) - x).detach()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rotelab.capacity.cot.config import PRECISIONS
from rotelab.capacity.cot.data import ReasoningSet
from rotelab.capacity.search import one_thread

def quantize(x: Tensor, precision: str) -> Tensor:
    """Round ``x`` to ``precision`` (straight-through gradient).

    fp32: identity; bf16: 8-bit mantissa; fp8: e4m3 (3-bit mantissa, max 448);
    int8: symmetric per-tensor, scale = max|x| / 127.
    """
    if precision == "fp32":
        return x
    if precision == "bf16":
        q = x.to(torch.bfloat16).to(x.dtype)
    elif precision == "fp8":
        q = x.clamp(-448, 448).to(torch.float8_e4m3fn).to(x.dtype)
    elif precision == "int8":
        scale = x.detach().abs().max().clamp_min(1e-12) / 127
        q = torch.round(x / scale).clamp(-127, 127) * scale
    else:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return x + (q - x).detach()


@dataclass(frozen=True)
class TinyConfig:
    """A decoder-only transformer; ``pos`` is "none" (NoPE) or "learned" absolute positions."""

    vocab: int
    width: int = 16
    depth: int = 1
    heads: int = 1
    mlp_ratio: int = 4
    pos: str = "none"
    max_len: int = 16  # learned positions: set to the longest sequence so P counts no unused rows
    precision: str = "fp32"


class QLinear(nn.Linear):
    """nn.Linear whose weight and bias are rounded to the model precision in forward."""

    precision = "fp32"

    def forward(self, x: Tensor) -> Tensor:
        b = None if self.bias is None else quantize(self.bias, self.precision)
        return F.linear(x, quantize(self.weight, self.precision), b)


class Block(nn.Module):
    def __init__(self, c: TinyConfig):
        super().__init__()
        self.c = c
        self.ln1, self.ln2 = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.qkv = QLinear(c.width, 3 * c.width)
        self.proj = QLinear(c.width, c.width)
        self.fc = QLinear(c.width, c.mlp_ratio * c.width)
        self.out = QLinear(c.mlp_ratio * c.width, c.width)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        H = self.c.heads
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D/H)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D)
        x = x + quantize(self.proj(a), self.c.precision)
        return x + quantize(self.out(F.gelu(self.fc(self.ln2(x)))), self.c.precision)


class TinyTransformer(nn.Module):
    def __init__(self, c: TinyConfig):
        super().__init__()
        assert c.width % c.heads == 0, f"width {c.width} not divisible by heads {c.heads}"
        self.c = c
        self.tok = nn.Embedding(c.vocab, c.width)
        self.pos = nn.Embedding(c.max_len, c.width) if c.pos == "learned" else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.depth))
        self.ln = nn.LayerNorm(c.width)
        self.head = QLinear(c.width, c.vocab, bias=False)
        for m in self.modules():
            if isinstance(m, QLinear):
                m.precision = c.precision

    def forward(self, idx: Tensor) -> Tensor:
        B, T = idx.shape
        assert T <= self.c.max_len, f"length {T} > max_len {self.c.max_len}"
        x = self.tok.weight
        h = F.embedding(idx, quantize(x, self.c.precision))  # (B, T, D)
        if self.pos is not None:
            h = h + quantize(self.pos.weight[:T], self.c.precision)
        for b in self.blocks:
            h = b(h)
        return quantize(self.head(self.ln(h)), self.c.precision)  # (B, T, V)


def n_params(model: nn.Module) -> int:
    """Every weight and bias (LayerNorm included)."""
    return sum(p.numel() for p in model.parameters())


def encode(data: ReasoningSet, *, cot: bool) -> tuple[Tensor, Tensor]:
    """(tokens, targets), both (N, T); target -100 where the next token is not supervised."""
    seqs = data.sequences(cot=cot)
    T = max(len(s) for s, _ in seqs)
    tokens = torch.full((len(seqs), T), data.vocab.pad, dtype=torch.long)
    targets = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, (s, start) in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s)
        targets[i, start : len(s) - 1] = torch.tensor(s[start + 1 :])
    return tokens, targets


@torch.no_grad()
def memorized(model: TinyTransformer, tokens: Tensor, targets: Tensor) -> Tensor:
    """(N,) bool: every supervised next token is the argmax. With fixed traces this equals
    greedy generation reproducing trace and label exactly (teacher forcing = greedy path)."""
    model.eval()
    pred = model(tokens).argmax(-1)
    ok = (pred == targets) | (targets == -100)
    return ok.all(dim=1)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    lr: float = 3e-3
    weight_decay: float = 0.0
    check_every: int = 50
    patience: int = 0  # > 0: give up once the memorised count has not reached a new best for this many steps


def train_memorize(data: ReasoningSet, arch: TinyConfig, *, cot: bool, seed: int, cfg: TrainConfig = TrainConfig()) -> dict:
    """Full-batch AdamW (cosine-decayed learning rate) on the supervised tokens until every example is memorised,
    ``cfg.steps`` run out, or (``cfg.patience`` > 0) the memorised count stalls for ``cfg.patience`` steps.
    Returns the parameter count, the memorised share, the steps used and why training stopped."""
    with one_thread():
        return _train(data, arch, cot=cot, seed=seed, cfg=cfg)


def _train(data: ReasoningSet, arch: TinyConfig, *, cot: bool, seed: int, cfg: TrainConfig) -> dict:
    torch.manual_seed(seed)
    model = TinyTransformer(arch)
    tokens, targets = encode(data, cot=cot)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)  # decay: the last few labels settle
    step, best, best_step, stop = 0, -1, 0, "steps"
    for step in range(1, cfg.steps + 1):
        model.train()
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.check_every == 0 or step == cfg.steps:
            k = int(memorized(model, tokens, targets).sum())
            if k == len(tokens):
                stop = "memorized"
                break
            if k > best:
                best, best_step = k, step
            elif cfg.patience and step - best_step >= cfg.patience:
                stop = "plateau"
                break
    ok = memorized(model, tokens, targets)
    return {"params": n_params(model), "memorized": float(ok.float().mean()), "per_example": ok.tolist(),
            "steps": step, "stop": stop, "arch": asdict(arch), "cot": cot, "seed": seed}
