"""Batched decoding with a KV cache: the one decoder every generating capability uses.

Greedy or sampled (temperature, top-p, n continuations per prompt), with an optional per-step
:class:`DecodeHook` (steering plugs in there: it edits activations through its hooks and may
rewrite each step's logits).

* Prompts are left-padded within length-sorted batches; position ids follow the attention mask
  (cumsum - 1), so a padded prompt decodes exactly like the same prompt alone. Greedy output
  equals ``model.generate(do_sample=False)`` token for token (tested).
* Every continuation has exactly ``max_new_tokens`` tokens: no stop at EOS (extraction compares
  fixed-length windows).
* Sampling is seeded per (prompt index, sample index): continuation j of prompt i draws its
  uniforms from its own generator, seeded by (seed, i, j), and picks tokens by inverse CDF. So a
  result never depends on the batch size or on which other prompts share its batch.
* Where transformers and the model support it, the KV cache is preallocated (``StaticCache``: no
  per-step concatenation, 27% of decode time with the dynamic cache on the 0.9M testbed model)
  and the prefill computes only the last position's logits.
* The n continuations of a prompt share one prefill (the prompt runs once per batch, its KV
  cache rows are copied to every continuation) where the cache holds plain keys and values and
  no hook edits the forward pass.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ContextManager

import torch

from rotelab.core.batching import length_sorted_batches
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel


@dataclass(frozen=True)
class Sampling:
    """Ancestral sampling: ``n`` continuations per prompt at ``temperature``, nucleus ``top_p``."""

    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0

    def validate(self) -> None:
        if not self.temperature > 0:
            raise RotelabError(f"temperature must be > 0 (greedy decoding takes no Sampling); got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RotelabError(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.n < 1:
            raise RotelabError(f"n (continuations per prompt) must be >= 1; got {self.n}")


@dataclass
class StepInputs:
    """What one decoding step fed the model (a hook that runs a second pass reuses it)."""

    input_ids: torch.Tensor  # (R, t) t = prompt length in the prefill, 1 afterwards (with a cache)
    attention_mask: torch.Tensor  # (R, T_so_far)
    position_ids: torch.Tensor  # (R, t)
    prompt_len: int


class DecodeHook:
    """Per-step extension point of :func:`decode` (all methods optional to override).

    ``attach(lm)`` wraps the whole decode (e.g. registers activation hooks); ``begin`` starts a
    batch of R rows; ``logits`` may rewrite the step's (R, V) logits; ``end`` returns per-row
    logs, each an (R, n_new) tensor (e.g. steering strength per generated token).
    """

    def attach(self, lm: "HFLanguageModel") -> ContextManager[Any]:
        return nullcontext()

    def begin(self, rows: int, prompt_len: int, n_new: int) -> None:
        pass

    def logits(self, step: int, z: torch.Tensor, inputs: StepInputs, handle: Any) -> torch.Tensor:
        return z

    def end(self) -> dict[str, torch.Tensor]:
        return {}


@dataclass
class Decoded:
    """``tokens[i][j]``: continuation j of prompt i; ``logs[name][i][j]``: a hook's per-token log."""

    tokens: list[list[list[int]]]
    logs: dict[str, list[list[list[float]]]] = field(default_factory=dict)

    def first(self) -> list[list[int]]:
        """The first (for greedy: the only) continuation of each prompt."""
        return [t[0] for t in self.tokens]


def row_seed(seed: int, prompt: int, sample: int) -> int:
    """The generator seed of continuation ``sample`` of prompt ``prompt`` (independent of batching)."""
    h = hashlib.sha256(f"{seed}:{prompt}:{sample}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def cache_kw() -> str:
    """transformers >= 5.x names the KV cache ``cache``; earlier versions ``past_key_values``."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, T) ids and mask, prompts right-aligned."""
    T = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), T), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, T - len(p) :] = torch.tensor(p)
        mask[r, T - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _static_cache(model, batch: int, length: int):
    """A preallocated KV cache when this transformers and model support it; else None."""
    try:
        from transformers import StaticCache
    except ImportError:
        return None
    if not getattr(model, "_can_compile_fullgraph", False):
        return None
    try:
        return StaticCache(config=model.config, max_cache_len=length, max_batch_size=batch)
    except TypeError:  # older signatures
        return None


def keep_last_logits(model) -> dict:
    """``logits_to_keep=1`` (only the last position's logits are needed) where supported."""
    import inspect

    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def _pick(z: torch.Tensor, sampling: Sampling | None, u: torch.Tensor | None) -> torch.Tensor:
    """Next token per row: argmax, or inverse-CDF sampling with the row's uniform ``u`` (R,)."""
    if sampling is None:
        return z.argmax(-1)
    p = torch.softmax(z.float() / sampling.temperature, -1)  # (R, V)
    sp, idx = p.sort(-1, descending=True)
    cum = sp.cumsum(-1)
    if sampling.top_p < 1:
        sp = sp.masked_fill(cum - sp >= sampling.top_p, 0.0)  # the nucleus; the top token always stays
        cum = sp.cumsum(-1)
    k = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(-1)).clamp_max(sp.shape[-1] - 1)  # (R, 1)
    return idx.gather(-1, k).squeeze(-1)


def _expandable(cache) -> bool:
    """A KV cache whose rows :func:`_share_prefill` may copy: every layer holds plain keys and values."""
    from transformers.cache_utils import DynamicLayer, StaticLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) in (DynamicLayer, StaticLayer) for layer in layers) and hasattr(cache, "reorder_cache")


def _share_prefill(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """Each row's row among the batch's distinct prompts (``inverse``), or None when all differ.

    The n continuations of a prompt share its prefill: it runs once per distinct prompt and the
    KV cache's rows are copied (``index_select``) to every continuation.
    """
    uniq, inverse = torch.unique(torch.cat([ids, mask], dim=1), dim=0, return_inverse=True)
    return inverse if len(uniq) < len(ids) else None


@torch.inference_mode()
def _decode_batch(lm: "HFLanguageModel", prompts: list[list[int]], n_new: int, *, sampling: Sampling | None, uniforms: torch.Tensor | None, hook: DecodeHook, handle: Any, use_cache: bool) -> tuple[list[list[int]], dict[str, torch.Tensor]]:
    model, kw = lm.model, cache_kw()
    ids, mask = left_pad(prompts, lm.pad_id, lm.device)  # (R, Tp)
    R, Tp = ids.shape
    hook.begin(R, Tp, n_new)
    # Shared prefill: only when no hook touches the forward pass (a hook's activation edits see every row).
    inverse = _share_prefill(ids, mask) if use_cache and type(hook).attach is DecodeHook.attach else None
    if inverse is not None:
        dev = inverse.device
        rep = torch.zeros(int(inverse.max()) + 1, dtype=torch.long, device=dev).scatter_(0, inverse, torch.arange(R, device=dev))  # one row per distinct prompt
    static = _static_cache(model, R, Tp + n_new) if use_cache else None
    if static is not None and inverse is not None and not _expandable(static):
        inverse = None
    last = keep_last_logits(model)
    past, new = None, []
    for step in range(n_new):
        T = ids.shape[1]
        pos_all = (mask.cumsum(-1) - 1).clamp_min(0)
        first = step == 0 or not use_cache
        inp, pos = (ids, pos_all) if first else (ids[:, -1:], pos_all[:, -1:])
        extra: dict[str, Any] = {}
        if use_cache:
            if static is not None:
                extra = {kw: static, "cache_position": torch.arange(T - inp.shape[1], T, device=ids.device)}
            elif past is not None:
                extra = {kw: past}
        shared = step == 0 and inverse is not None
        if shared:
            out = model(input_ids=inp[rep], attention_mask=mask[rep], position_ids=pos[rep], use_cache=True, **extra, **last)
            cache = static if static is not None else getattr(out, kw)
            if static is None and not _expandable(cache):  # rerun unshared: this cache's rows cannot be copied
                inverse, shared = None, False
                out = model(input_ids=inp, attention_mask=mask, position_ids=pos, use_cache=True, **last)
            else:
                cache.reorder_cache(inverse)
        else:
            out = model(input_ids=inp, attention_mask=mask, position_ids=pos, use_cache=use_cache, **extra, **last)
        past = getattr(out, kw) if use_cache and static is None else None
        logits = out.logits[:, -1][inverse] if shared else out.logits[:, -1]
        z = hook.logits(step, logits, StepInputs(inp, mask, pos, Tp), handle)  # (R, V)
        nxt = _pick(z, sampling, uniforms[:, step] if uniforms is not None else None)
        new.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones((R, 1))], dim=1)
    return torch.stack(new, dim=1).cpu().tolist(), hook.end()


def decode(
    lm: "HFLanguageModel",
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    sampling: Sampling | None = None,
    hook: DecodeHook | None = None,
    batch_size: int = 32,
    use_cache: bool = True,
    progress: bool = False,
    label: str | None = None,
) -> Decoded:
    """Continuations of each prompt (greedy when ``sampling`` is None), in input order.

    Prompts must fit the context with the new tokens: ``len(prompt) + max_new_tokens <= max_length``.
    ``batch_size`` counts rows (prompt x continuation).
    """
    from rotelab.core.console import progress as bar_

    if max_new_tokens < 1:
        raise RotelabError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    if batch_size < 1:
        raise RotelabError(f"--batch-size must be >= 1; got {batch_size}")
    if sampling is not None:
        sampling.validate()
    for i, p in enumerate(prompts):
        if not p:
            raise RotelabError(f"prompt {i} is empty")
        if len(p) + max_new_tokens > lm.max_length:
            raise RotelabError(f"prompt {i}: {len(p)} tokens + {max_new_tokens} new > context {lm.max_length}")
    n = sampling.n if sampling is not None else 1
    rows = [(i, j) for i in range(len(prompts)) for j in range(n)]
    hook = hook or DecodeHook()
    tokens: list[list[list[int]]] = [[[] for _ in range(n)] for _ in prompts]
    logs: dict[str, list[list[list[float]]]] = {}
    with hook.attach(lm) as handle, bar_(disable=not progress) as bar:
        task = bar.add_task(label or ("sampling" if sampling else "greedy decoding"), total=len(rows))
        for idx in length_sorted_batches([len(prompts[i]) for i, _ in rows], batch_size):
            batch = [rows[r] for r in idx]
            u = None
            if sampling is not None:
                u = torch.stack([torch.rand(max_new_tokens, generator=torch.Generator().manual_seed(row_seed(sampling.seed, i, j))) for i, j in batch]).to(lm.device)
            toks, extra = _decode_batch(lm, [prompts[i] for i, _ in batch], max_new_tokens, sampling=sampling, uniforms=u, hook=hook, handle=handle, use_cache=use_cache)
            for r, (i, j) in enumerate(batch):
                tokens[i][j] = toks[r]
                for name, t in extra.items():
                    logs.setdefault(name, [[[] for _ in range(n)] for _ in prompts])[i][j] = t[r].tolist()
            bar.advance(task, len(batch))
    return Decoded(tokens, logs)


def greedy_generate(lm: "HFLanguageModel", prompts: list[list[int]], max_new_tokens: int, *, batch_size: int = 32, progress: bool = False) -> list[list[int]]:
    """Greedy continuations (token ids) of each prompt, in input order (see :func:`decode`)."""
    return decode(lm, prompts, max_new_tokens, batch_size=batch_size, progress=progress).first()
