"""Where a fine-tune changed the weights (Ma et al. 2025, section on undoing the Instruct mitigation).

Per weight tensor, with dW = W_tuned - W_base (full checkpoints) or dW = (alpha / r) B @ A (a PEFT
LoRA adapter; alpha / sqrt(r) with rsLoRA; transposed for GPT-2's Conv1D, PEFT's ``fan_in_fan_out``):

    R = |dW| / max(|W|, eps)          (element-wise; eps guards zero weights)

Counts of R > 1%, 10%, 100%, sum of R, ||dW||_F^2 and ||W||_F^2 are accumulated per tensor and then
per layer, per module type and per (layer, type), so tensors are streamed from safetensors one at
a time and a 70B diff fits in memory. The distribution of R is a histogram over log10 bins.

References
----------
1. Ma et al. Memorization: A Close Look at Books. arXiv 2504.12549 (~14% of weights change > 1%,
   ~0.15% > 100%; attention gets ~7x the MLP's relative update; changes sit in the lower blocks).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from rotelab.errors import RotelabError
from rotelab.extraction.module_types import TYPES, layer_index, module_type

EPS = 1e-8
LOG_BINS = np.linspace(-8, 4, 49)  # log10 R from 1e-8 to 1e4, quarter decades
_COUNTERS = ("n", "gt_1pct", "gt_10pct", "gt_100pct", "sum_r", "dw_sq", "w_sq")


def _stats(w: torch.Tensor, dw: torch.Tensor, eps: float) -> tuple[dict[str, float], np.ndarray]:
    """Counters of one tensor and its histogram of log10 R (R = 0 falls in the lowest bin)."""
    w, dw = w.double(), dw.double()
    r = dw.abs() / w.abs().clamp_min(eps)
    c = {"n": r.numel(), "gt_1pct": int((r > 0.01).sum()), "gt_10pct": int((r > 0.1).sum()), "gt_100pct": int((r > 1.0).sum())}
    c |= {"sum_r": float(r.sum()), "dw_sq": float((dw**2).sum()), "w_sq": float((w**2).sum())}
    logr = torch.log10(r.clamp_min(10 ** LOG_BINS[0])).clamp_max(LOG_BINS[-1]).float().numpy().ravel()
    return c, np.histogram(logr, bins=LOG_BINS)[0]


def _finish(c: dict[str, float]) -> dict[str, Any]:
    n = c["n"]
    return {
        "n_weights": int(n),
        "share_changed_gt_1pct": c["gt_1pct"] / n if n else None,
        "share_changed_gt_10pct": c["gt_10pct"] / n if n else None,
        "share_changed_gt_100pct": c["gt_100pct"] / n if n else None,
        "mean_relative_change": c["sum_r"] / n if n else None,
        "relative_frobenius": float(np.sqrt(c["dw_sq"] / c["w_sq"])) if c["w_sq"] else None,
    }


# -- sources of (name, W, dW) -------------------------------------------------------------------

def _safetensor_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise RotelabError(f"{folder}: no *.safetensors weights (save the model with safe_serialization)")
    return files


def _index(folder: Path) -> dict[str, Path]:
    from safetensors import safe_open

    out = {}
    for f in _safetensor_files(folder):
        with safe_open(f, framework="pt") as h:
            out |= {k: f for k in h.keys()}
    return out


def _read(files: dict[str, Path], key: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(files[key], framework="pt") as h:
        return h.get_tensor(key)


def full_pairs(base: Path, tuned: Path) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, W_base, dW) for every floating tensor in both checkpoints, one at a time."""
    bi, ti = _index(base), _index(tuned)
    common = [k for k in bi if k in ti]
    if not common:
        raise RotelabError(f"--tuned {tuned}: no weight name in common with --base {base}")
    for k in common:
        w, wt = _read(bi, k), _read(ti, k)
        if not w.is_floating_point():
            continue
        if w.shape != wt.shape:
            raise RotelabError(f"{k}: shape {tuple(w.shape)} in --base but {tuple(wt.shape)} in --tuned")
        yield k, w, wt.to(w.dtype) - w


def _read_config(path: Path) -> Any:
    """A user's JSON file; malformed JSON is one line naming the file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f":{e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise RotelabError(f"{path}{where}: malformed JSON ({e.msg if isinstance(e, json.JSONDecodeError) else e.reason})") from None


def lora_deltas(adapter: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Base-model weight name -> dW = scale * B @ A (shape (out, in)), and the adapter config."""
    cfg_path = Path(adapter) / "adapter_config.json"
    if not cfg_path.exists():
        raise RotelabError(f"--adapter {adapter}: no adapter_config.json (not a PEFT adapter folder)")
    cfg = _read_config(cfg_path)
    if not isinstance(cfg, dict):
        raise RotelabError(f"{cfg_path}: expected a JSON object")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise RotelabError(f"--adapter {adapter}: peft_type {cfg.get('peft_type')} is not LORA")
    if not (isinstance(cfg.get("r"), int) and cfg["r"] >= 1):
        raise RotelabError(f"{cfg_path}: field 'r' must be an integer >= 1; got {cfg.get('r')!r}")
    r, alpha = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"]))
    scale = alpha / np.sqrt(r) if cfg.get("use_rslora") else alpha / r
    idx = _index(adapter)
    deltas = {}
    for k in idx:
        if ".lora_A." not in k:
            continue
        if k.replace(".lora_A.", ".lora_B.") not in idx:
            raise RotelabError(f"--adapter {adapter}: {k} has no lora_B partner")
        a, b = _read(idx, k).double(), _read(idx, k.replace(".lora_A.", ".lora_B.")).double()
        name = k.replace(".lora_A.weight", ".weight").replace(".lora_A.default.weight", ".weight")
        name = name.removeprefix("base_model.model.")
        deltas[name] = scale * (b @ a)  # (out, r) @ (r, in) -> (out, in)
    extra = [k for k in idx if ".lora_A." not in k and ".lora_B." not in k]
    if extra:
        raise RotelabError(f"--adapter {adapter}: holds non-LoRA tensors ({extra[0]} ...; modules_to_save); diff the merged model with --tuned instead")
    return deltas, cfg


def adapter_pairs(base: Path, adapter: Path) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, W_base, dW) for every floating base tensor; zero dW where the adapter has no LoRA."""
    deltas, cfg = lora_deltas(adapter)
    bi = _index(base)
    used: set[str] = set()
    for k in bi:
        w = _read(bi, k)
        if not w.is_floating_point():
            continue
        key = next((c for c in (k, k.split(".", 1)[-1]) if c in deltas), None)
        if key is None:
            yield k, w, torch.zeros_like(w)
            continue
        used.add(key)
        d = deltas[key]
        if cfg.get("fan_in_fan_out") or (d.shape != w.shape and d.T.shape == w.shape):
            d = d.T  # GPT-2 Conv1D stores W as (in, out)
        if d.shape != w.shape:
            raise RotelabError(f"{k}: LoRA update {tuple(d.shape)} does not fit base weight {tuple(w.shape)}")
        yield k, w, d.to(w.dtype)
    missing = sorted(set(deltas) - used)
    if missing:
        raise RotelabError(f"--adapter {adapter}: {len(missing)} LoRA modules not found in --base (e.g. {missing[0]})")


def _headers(folder: Path) -> dict[str, tuple[bool, tuple[int, ...]]]:
    """Tensor name -> (floating point?, shape), from the safetensors headers (no tensor is read)."""
    from safetensors import safe_open

    out = {}
    for f in _safetensor_files(folder):
        with safe_open(f, framework="pt") as h:
            for k in h.keys():
                s = h.get_slice(k)
                out[k] = (s.get_dtype() in ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"), tuple(s.get_shape()))
    return out


def check_sources(base: Path, *, tuned: Path | None = None, adapter: Path | None = None) -> None:
    """Every refusal of :func:`full_pairs` / :func:`adapter_pairs`, checked before a run folder
    exists: weights present, names in common, shapes that fit."""
    bh = _headers(base)
    if tuned is not None:
        th = _headers(tuned)
        common = [k for k in bh if k in th]
        if not common:
            raise RotelabError(f"--tuned {tuned}: no weight name in common with --base {base}")
        for k in common:
            if bh[k][0] and bh[k][1] != th[k][1]:
                raise RotelabError(f"{k}: shape {bh[k][1]} in --base but {th[k][1]} in --tuned")
        return
    deltas, cfg = lora_deltas(adapter)  # type: ignore[arg-type]
    used: set[str] = set()
    for k, (floating, shape) in bh.items():
        key = next((c for c in (k, k.split(".", 1)[-1]) if c in deltas), None)
        if not floating or key is None:
            continue
        used.add(key)
        d = tuple(deltas[key].shape)
        if d != shape and d[::-1] != shape:
            raise RotelabError(f"{k}: LoRA update {d} does not fit base weight {shape}")
    missing = sorted(set(deltas) - used)
    if missing:
        raise RotelabError(f"--adapter {adapter}: {len(missing)} LoRA modules not found in --base (e.g. {missing[0]})")


# -- aggregation -------------------------------------------------------------------------------

def weight_diff(pairs: Iterator[tuple[str, torch.Tensor, torch.Tensor]], *, eps: float = EPS) -> dict[str, Any]:
    """Aggregate relative changes overall, per module type, per layer and per (layer, type)."""
    overall: dict[str, float] = defaultdict(float)
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_layer: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    cell: dict[tuple[int, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    hist = np.zeros(len(LOG_BINS) - 1, dtype=np.int64)
    tensors = []
    for name, w, dw in pairs:
        c, h = _stats(w, dw, eps)
        hist += h
        t, layer = module_type(name), layer_index(name)
        groups = [overall, by_type[t]] + ([by_layer[layer], cell[(layer, t)]] if layer is not None else [])
        for g in groups:
            for k in _COUNTERS:
                g[k] += c[k]
        tensors.append({"name": name, "type": t, "layer": layer, "shape": list(w.shape)} | _finish(c))
    if not tensors:
        raise RotelabError("no floating-point weight tensors to compare")
    res: dict[str, Any] = {"eps": eps} | _finish(overall)
    res["by_type"] = {t: _finish(by_type[t]) for t in TYPES if t in by_type}
    res["by_layer"] = {str(l): _finish(by_layer[l]) for l in sorted(by_layer)}
    res["by_layer_type"] = {f"{l}/{t}": _finish(cell[(l, t)]) for l, t in sorted(cell)}
    att, mlp = res["by_type"].get("attention"), res["by_type"].get("mlp")
    if att and mlp and mlp["mean_relative_change"]:
        res["attention_mlp_ratio"] = att["mean_relative_change"] / mlp["mean_relative_change"]
    else:
        res["attention_mlp_ratio"] = None
        res["attention_mlp_ratio_reason"] = "no attention or no changed MLP weights"
    res["lower_quarter_share_of_changed_gt_1pct"] = _lower_share(by_layer)
    res["other_modules"] = sorted({x["name"] for x in tensors if x["type"] == "other"})
    res["log10_r_histogram"] = {"bin_edges": LOG_BINS.tolist(), "counts": hist.tolist()}
    res["tensors"] = tensors
    return res


def _lower_share(by_layer: dict[int, dict[str, float]]) -> float | None:
    """Of the block weights changed by > 1%, the share in the lowest 25% of blocks (at least one)."""
    changed = sum(c["gt_1pct"] for c in by_layer.values())
    if not changed:
        return None
    n_low = max(1, int(np.ceil((max(by_layer) + 1) / 4)))
    return sum(c["gt_1pct"] for l, c in by_layer.items() if l < n_low) / changed
