"""Parameter name -> (layer index, module type) for any transformers causal LM.

Types: attention, mlp, embedding, norm, other. The rules are checked in this order:

1. norms: a path part with ``norm`` or GPT-2's ``ln_1``/``ln_2``/``ln_f`` (also Qwen3's ``q_norm``
   inside attention: a gain vector, not a projection);
2. embeddings: ``wte``, ``wpe``, ``embed_tokens``, ``embed_in``, ``embed_out``, ``lm_head``;
3. the parent block decides ambiguous leaves: GPT-2's ``c_proj`` sits in both ``attn`` and ``mlp``,
   GPT-NeoX's ``dense`` in ``attention``; a part containing ``attn``/``attention`` -> attention,
   ``mlp``/``ffn``/``feed_forward`` -> mlp;
4. leaf names unique to one type (``q_proj``, ``gate_proj``, ``dense_h_to_4h``, ``fc1`` ...);
5. anything else: ``other`` (reported, never guessed).
"""

from __future__ import annotations

import re

TYPES = ("attention", "mlp", "embedding", "norm", "other")

_NORM = re.compile(r"(norm|^ln_\d*$|^ln_f$|^layer_norm)")
_EMBED = {"wte", "wpe", "embed_tokens", "embed_in", "embed_out", "lm_head", "embed_positions", "word_embeddings"}
_ATTN_PART = re.compile(r"(attn|attention)")
_MLP_PART = re.compile(r"^(mlp|ffn|feed_forward|block_sparse_moe)$")
_ATTN_LEAF = {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "c_attn", "out_proj", "Wqkv", "query", "key", "value"}
_MLP_LEAF = {"gate_proj", "up_proj", "down_proj", "gate_up_proj", "c_fc", "dense_h_to_4h", "dense_4h_to_h", "fc1", "fc2", "fc_in", "fc_out", "w1", "w2", "w3"}
_LAYER = re.compile(r"\.(?:h|layers|layer|blocks|block)\.(\d+)\.")


def module_type(name: str) -> str:
    """Module type of a parameter (or module) name.

    >>> module_type("transformer.h.0.attn.c_proj.weight"), module_type("transformer.h.0.mlp.c_proj.weight")
    ('attention', 'mlp')
    >>> module_type("model.layers.3.self_attn.q_proj.weight"), module_type("gpt_neox.layers.1.attention.dense.weight")
    ('attention', 'attention')
    >>> module_type("model.norm.weight"), module_type("lm_head.weight"), module_type("score.weight")
    ('norm', 'embedding', 'other')
    """
    parts = name.split(".")
    if parts[-1] in ("weight", "bias"):
        parts = parts[:-1]
    if any(_NORM.search(p) for p in parts):
        return "norm"
    if any(p in _EMBED for p in parts):
        return "embedding"
    for p in reversed(parts[:-1]):  # the nearest enclosing block wins
        if _ATTN_PART.search(p):
            return "attention"
        if _MLP_PART.match(p):
            return "mlp"
    leaf = parts[-1] if parts else ""
    if leaf in _ATTN_LEAF:
        return "attention"
    if leaf in _MLP_LEAF:
        return "mlp"
    return "other"


def layer_index(name: str) -> int | None:
    """Block index of a parameter, None outside the blocks.

    >>> layer_index("transformer.h.11.mlp.c_fc.weight"), layer_index("model.layers.2.input_layernorm.weight"), layer_index("lm_head.weight")
    (11, 2, None)
    """
    m = _LAYER.search("." + name)
    return int(m.group(1)) if m else None
