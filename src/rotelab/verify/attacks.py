"""Attacks that act on the model rather than on the samples: they return an attacked copy of the
unlearned model, which the membership suite then re-measures like any model.

Quantization (Zhang et al., ICLR 2025, "Catastrophic failure of LLM unlearning via quantization"):
unlearning moves weights by less than a quantization step, so rounding can snap them back.
Here: symmetric per-output-channel round-to-nearest of every linear layer's weight, in torch on
CPU (bitsandbytes needs a GPU; its 8-bit is the same rounding per row, absmax scale)::

    s_c = max_i |W_ci| / q_max,  q_max = 2^(b-1) - 1;   W~_ci = s_c * clamp(round(W_ci / s_c), -q_max, q_max)

Biases, norms, embeddings and the output head stay in full precision (as bitsandbytes and
transformers leave ``lm_head``; in GPT-2 it is tied to the embeddings).

Relearning (Hu et al. 2024, "Unlearning or obfuscating?"; Lynch et al. 2024): a fixed small
budget of fine-tuning steps on data that never held the forget set (retain only, or other
facts of the same distribution): forgotten facts that come back were hidden, not removed.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import torch

LINEAR_TYPES = ("Linear", "Conv1D")  # transformers' GPT-2 stores its linear layers as Conv1D (in, out)


def quantize_weight(w: torch.Tensor, bits: int, *, channel_dim: int = 0) -> torch.Tensor:
    """``w`` rounded to ``bits``-bit symmetric integers with one absmax scale per output channel.

    >>> quantize_weight(torch.tensor([[1.0, 0.49, -0.26]]), 2).tolist()  # q_max 1: steps of 1.0
    [[1.0, 0.0, -0.0]]
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in [2, 16]; got {bits}")
    q_max = 2 ** (bits - 1) - 1
    reduce = [d for d in range(w.dim()) if d != channel_dim]
    scale = w.abs().amax(dim=reduce, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny) / q_max
    return torch.clamp(torch.round(w / scale), -q_max, q_max) * scale


@torch.no_grad()
def quantized_copy(model: torch.nn.Module, bits: int) -> tuple[torch.nn.Module, int]:
    """A deep copy of ``model`` with every linear weight quantized (:func:`quantize_weight`),
    the output head excepted; returns the copy and the number of layers quantized."""
    q = copy.deepcopy(model)
    head = q.get_output_embeddings() if hasattr(q, "get_output_embeddings") else None
    n = 0
    for m in q.modules():
        if m is head or type(m).__name__ not in LINEAR_TYPES:
            continue
        dim = 1 if type(m).__name__ == "Conv1D" else 0  # Conv1D: (in, out); Linear: (out, in)
        m.weight.copy_(quantize_weight(m.weight, bits, channel_dim=dim))
        n += 1
    return q.eval(), n


@dataclass(frozen=True)
class RelearnConfig:
    """The attacker's budget: ``steps`` AdamW steps of ``batch_size`` texts at ``lr``."""

    steps: int = 20
    lr: float = 1e-3
    batch_size: int = 8
    seed: int = 0


def relearned_copy(model: torch.nn.Module, ids: list[list[int]], cfg: RelearnConfig, *, pad_id: int = 0) -> tuple[torch.nn.Module, list[float]]:
    """A deep copy of ``model`` fine-tuned for ``cfg.steps`` steps on token-id lists ``ids``
    (batches drawn with replacement across steps, without within one, seeded); returns the copy and the step losses."""
    from rotelab.core.training import collate

    torch.manual_seed(cfg.seed)
    m = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    losses = []
    for _ in range(cfg.steps):
        x, mask, labels = (t.to(next(m.parameters()).device) for t in collate(rng.sample(ids, min(cfg.batch_size, len(ids))), pad_id))
        loss = m(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return m.eval(), losses
