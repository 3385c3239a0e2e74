"""Nested results that hold tensors, stored as one safetensors file: the tensors in its body, the
structure (dicts, lists, numbers, strings) as JSON in its header. Nothing read back can run code,
unlike ``torch.save`` / pickle, which rotelab never reads.

One file per record keeps the write atomic (one rename). The encoding is exact: a tensor comes
back with its dtype and shape, a numpy array as a numpy array; tuples come back as lists.

>>> import tempfile, torch, numpy as np
>>> p = Path(tempfile.mkdtemp()) / "r.safetensors"
>>> save(p, {"w": torch.arange(3), "sims": np.array([0.5, 1.0]), "$odd key": [1, None, "a"]})
>>> r = load(p)
>>> r["w"].tolist(), r["sims"].tolist(), r["$odd key"]
([0, 1, 2], [0.5, 1.0], [1, None, 'a'])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.core.io import atomic_write_bytes
from rotelab.errors import RotelabError

_KEY = "rotelab"  # header metadata entry that holds the JSON structure
_TENSOR, _ARRAY = "$tensor", "$ndarray"  # a tensor / a numpy array, by its name in the file


def _encode(obj: Any, tensors: dict) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
        return {_TENSOR: name}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("object arrays cannot be stored")
        name = f"t{len(tensors)}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {_ARRAY: name}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be strings; got {k!r}")
            out["$" + k if k.startswith("$") else k] = _encode(v, tensors)  # "$" escaped: a user's key never reads as a marker
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__}")


def _decode(obj: Any, get) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and _TENSOR in obj:
            return get(obj[_TENSOR])
        if len(obj) == 1 and _ARRAY in obj:
            return get(obj[_ARRAY]).numpy()
        return {k[1:] if k.startswith("$") else k: _decode(v, get) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, get) for v in obj]
    return obj


def save(path: Path | str, obj: Any) -> None:
    """Write ``obj`` (nested dicts with string keys, lists, numbers, strings, tensors, arrays) atomically."""
    from safetensors.torch import save as st_save

    tensors: dict = {}
    structure = _encode(obj, tensors)
    atomic_write_bytes(path, st_save(tensors, metadata={_KEY: json.dumps(structure)}))


def load(path: Path | str) -> Any:
    """Read a record written by :func:`save`; anything else is one line naming the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        legacy = path.with_suffix(".pt")
        hint = f" ({legacy.name} beside it is a pickle from an older rotelab and is never loaded: it could run code)" if legacy.exists() else ""
        raise RotelabError(f"{path}: file not found{hint}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if _KEY not in meta:
                raise ValueError("no rotelab structure in its header")
            return _decode(json.loads(meta[_KEY]), f.get_tensor)
    except (SafetensorError, ValueError, KeyError, OSError) as e:
        raise RotelabError(f"{path}: not a rotelab safetensors record ({e})") from None
