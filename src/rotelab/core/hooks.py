"""Forward hooks, the one module every capability uses to read or edit activations.

Two entry points, both temporary (hooks never outlive their ``with`` block):

* :func:`hooked` -- decoder blocks of a causal LM, cache- and batch-safe residual-stream edits
  (steering); sites speak TransformerLens.
* :func:`module_hooks` -- any named submodule of any ``nn.Module`` (a UNet's attention, an MLP):
  ``fn(module, inputs, output)`` returns None to observe, a value to replace the output (forward
  hooks), or new inputs (pre-hooks); the TransformerLens contract.

Residual-stream hooks
---------------------

Sites speak TransformerLens: ``blocks.L.hook_resid_post`` is the output of decoder block ``L``
(0-based). Blocks are found automatically (``transformer.h``, ``model.layers``,
``gpt_neox.layers``, ``model.decoder.layers``, ...) or by an explicit dotted path.

Positions. A forward pre-hook on the model reads, on every call, how many tokens the KV cache
already holds (``cache.get_seq_length()``; 0 without a cache) and the attention mask. So the
absolute column of each hidden state is known in the prefill, in every cached decode step
(``seq_len = 1``), and when a caller re-feeds the whole sequence without a cache: the counter
persists across decode steps without any bookkeeping by the caller (the pitfall of absolute
``token_indices`` under the cache, steering-vectors #60). Padded columns (mask 0) are never edited.

Block outputs are a tensor (transformers >= 5) or a tuple whose first item is the hidden state
(earlier versions); both are handled. Hooks never outlive their ``with`` block.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch

from rotelab.errors import RotelabError

BLOCK_PATHS = ("transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers", "transformer.layers", "model.transformer.h", "layers")
_SITE = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


def find_blocks(model: torch.nn.Module, path: str | None = None) -> torch.nn.ModuleList:
    """The decoder blocks of ``model``: ``path`` (dotted, e.g. ``model.layers``) or the first known path found."""
    for p in (path,) if path else BLOCK_PATHS:
        try:
            mod = model.get_submodule(p)
        except AttributeError:
            if path:
                raise RotelabError(f"no module '{path}' in {type(model).__name__}; give the dotted path of its decoder-block list") from None
            continue
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0:
            return mod
        if path:
            raise RotelabError(f"'{path}' in {type(model).__name__} is a {type(mod).__name__}, not a non-empty ModuleList of decoder blocks")
    raise RotelabError(
        f"cannot find the decoder blocks of {type(model).__name__} (tried {', '.join(BLOCK_PATHS)}); pass the dotted path with --blocks"
    )


def site_layer(site: str | int, n_layers: int) -> int:
    """``blocks.L.hook_resid_post`` (or ``L``; negative counts from the end) -> block index ``L``."""
    if isinstance(site, str):
        m = _SITE.match(site)
        if m is None and not site.lstrip("-").isdigit():
            raise RotelabError(f"site must look like 'blocks.3.hook_resid_post' or be a block index; got '{site}'")
        site = int(m.group(1)) if m else int(site)
    layer = site + n_layers if site < 0 else site
    if not 0 <= layer < n_layers:
        raise RotelabError(f"block index must be in [0, {n_layers}); got {site}")
    return layer


def site_name(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def _past_len(kwargs: dict) -> int:
    pos = kwargs.get("cache_position")
    if torch.is_tensor(pos) and pos.numel():  # the decoder passes it with a static cache
        return int(pos.reshape(-1)[0])
    for key in ("cache", "past_key_values"):
        past = kwargs.get(key)
        if past is None:
            continue
        if hasattr(past, "get_seq_length"):
            return int(past.get_seq_length())
        if isinstance(past, (tuple, list)) and past and past[0] is not None:
            return int(past[0][0].shape[-2])  # legacy tuple cache: (B, heads, T, d_head)
    return 0


@dataclass
class CallState:
    """What the hooks know about the current forward call.

    offset : absolute column of the first input token (= tokens already in the KV cache).
    valid  : (B, T) bool, False on padded columns.
    """

    offset: int = 0
    valid: torch.Tensor | None = None


# An edit receives (h (B, T, d), columns (T,) absolute, valid (B, T), state) and returns the new h or None.
Edit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, CallState], "torch.Tensor | None"]


@dataclass
class Hooks:
    """Handles of the registered hooks and the shared per-call state."""

    state: CallState = field(default_factory=CallState)
    handles: list = field(default_factory=list)
    paused: bool = False

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Run forwards untouched (e.g. the base stream of contrastive decoding)."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False


def _input_shape(args: tuple, kwargs: dict) -> tuple[int, int]:
    x = kwargs.get("input_ids")
    if x is None and args and torch.is_tensor(args[0]):
        x = args[0]
    if x is None:
        x = kwargs["inputs_embeds"]
    return int(x.shape[0]), int(x.shape[1])


@contextmanager
def hooked(model: torch.nn.Module, edits: dict[int, Edit], *, blocks: str | None = None) -> Iterator[Hooks]:
    """Register ``edits`` (block index -> edit) on the block outputs for the duration of the block.

    >>> # with hooked(lm.model, {1: lambda h, cols, valid, st: h + v}) as hk: lm.model(ids)
    """
    layers = find_blocks(model, blocks)
    hk = Hooks()

    def pre(mod, args, kwargs):
        B, T = _input_shape(args, kwargs)
        hk.state.offset = _past_len(kwargs)
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:
            hk.state.valid = mask[:, -T:].bool()
        else:
            hk.state.valid = torch.ones((B, T), dtype=torch.bool, device=next(model.parameters()).device)

    def make(edit: Edit):
        def post(mod, args, out):
            if hk.paused:
                return None
            h = out[0] if isinstance(out, tuple) else out  # (B, T, d)
            cols = torch.arange(hk.state.offset, hk.state.offset + h.shape[1], device=h.device)
            new = edit(h, cols, hk.state.valid, hk.state)
            if new is None:
                return None
            return (new, *out[1:]) if isinstance(out, tuple) else new

        return post

    try:
        hk.handles.append(model.register_forward_pre_hook(pre, with_kwargs=True))
        for layer, edit in sorted(edits.items()):
            if not 0 <= layer < len(layers):
                raise RotelabError(f"block index must be in [0, {len(layers)}); got {layer}")
            hk.handles.append(layers[layer].register_forward_hook(make(edit)))
        yield hk
    finally:
        hk.remove()


# -- any named submodule ------------------------------------------------------------------------
ModuleFn = Callable[[torch.nn.Module, tuple, Any], Any]


@contextmanager
def module_hooks(model: torch.nn.Module, fns: Mapping[str, ModuleFn], *, pre: bool = False) -> Iterator[list]:
    """Register ``fns`` (dotted module name -> fn) as forward hooks (``pre=True``: forward
    pre-hooks, ``fn(module, inputs)``) for the duration of the block; unknown names are refused.

    >>> lin = torch.nn.Sequential(torch.nn.Linear(2, 2)).requires_grad_(False)
    >>> with module_hooks(lin, {"0": lambda m, i, out: out * 0}):
    ...     float(lin(torch.ones(1, 2)).abs().sum())
    0.0
    >>> float(lin(torch.ones(1, 2)).abs().sum()) > 0
    True
    """
    handles = []
    try:
        for name, fn in fns.items():
            try:
                mod = model.get_submodule(name)
            except AttributeError:
                raise RotelabError(f"no module '{name}' in {type(model).__name__}") from None
            handles.append(mod.register_forward_pre_hook(fn) if pre else mod.register_forward_hook(fn))
        yield handles
    finally:
        for h in handles:
            h.remove()
