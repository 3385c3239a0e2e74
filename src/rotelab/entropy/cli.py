"""``rotelab entropy``: matrix-based entropy per layer (``mbe``) and CE / GAPT training (``train``)."""

from __future__ import annotations

import enum
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import (
    group,
    BatchOpt, DeviceOpt, DtypeOpt, JsonOpt, LongTextOpt, ModelOpt, OutOpt, PickleOpt, QuietOpt,
    RemoteCodeOpt, SeedOpt, finish, open_model, open_run,
)
from rotelab.errors import RotelabError

app = group("entropy", help="Matrix-based entropy of representations; GAPT training.")

PatchOpt = Annotated[int, typer.Option("--patch", help="Tokens per patch (the paper's 8).")]


class Objective(str, enum.Enum):
    ce = "ce"
    gapt = "gapt"


class Variant(str, enum.Enum):
    relative = "relative"
    absolute = "absolute"


class Layers(str, enum.Enum):
    rotate = "rotate"
    all_middle = "all_middle"


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise RotelabError(msg)


@app.command()
def mbe(
    model: ModelOpt,
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (optional 'id', and 'label' or 'split' to compare groups).")],
    out: OutOpt = None,
    patch: PatchOpt = 8,
    alpha: Annotated[float, typer.Option("--alpha", help="Rényi order (2: the paper's closed form; other values use eigenvalues).")] = 2.0,
    batch_size: BatchOpt = 16,
    long_text: LongTextOpt = "truncate",
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """MBE per layer of any causal LM over a JSONL file, with a per-layer plot."""
    from rotelab.core.data import read_jsonl
    from rotelab.entropy.measure import MBEConfig, mbe_run

    _check(patch >= 2, f"--patch must be >= 2; got {patch}")
    _check(alpha > 0, f"--alpha must be > 0; got {alpha}")
    _check(batch_size >= 1, f"--batch-size must be >= 1; got {batch_size}")
    samples = read_jsonl(data)
    lm = open_model(model, device=device, dtype=dtype, long_text=long_text, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    run = open_run(out, "entropy mbe", dict(model=model, data=data, patch=patch, alpha=alpha, batch_size=batch_size, long_text=long_text, dtype=dtype), seed=seed)
    run.add_input("data", data)
    result = mbe_run(lm, samples, run, MBEConfig(patch=patch, alpha=alpha, batch_size=batch_size, seed=seed), progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)


@app.command()
def train(
    preset: Annotated[str, typer.Option("--preset", help="Testbed preset: model size and books (tiny | small).")] = "tiny",
    objective: Annotated[Objective, typer.Option("--objective", help="ce: cross-entropy only; gapt: gated CE / CE + w·MBE phases.")] = Objective.gapt,
    out: OutOpt = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps (the same budget for both objectives).")] = 300,
    n_layer: Annotated[Optional[int], typer.Option("--n-layer", help="Blocks (default: the preset's; GAPT skips the first and last).")] = None,
    batch_size: BatchOpt = 16,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 2e-3,
    variant: Annotated[Variant, typer.Option("--variant", help="Gate: relative (current code) or absolute (paper-era).")] = Variant.relative,
    layers: Annotated[Layers, typer.Option("--layers", help="Compression target: rotate one middle block per step, or their mean.")] = Layers.rotate,
    mbe_weight: Annotated[float, typer.Option("--mbe-weight", help="w in CE + w·MBE.")] = 1.0,
    p_m: Annotated[int, typer.Option("--p-m", help="CE patience (steps).")] = 125,
    p_a: Annotated[int, typer.Option("--p-a", help="MBE patience (steps).")] = 75,
    tau_m: Annotated[float, typer.Option("--tau-m", help="CE plateau threshold.")] = 0.01,
    tau_a: Annotated[float, typer.Option("--tau-a", help="MBE plateau threshold.")] = 0.01,
    tau_spike: Annotated[float, typer.Option("--tau-spike", help="CE spike that ends compression.")] = 0.1,
    patch: PatchOpt = 8,
    max_passages: Annotated[Optional[int], typer.Option("--max-passages", help="Use at most this many book passages.")] = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Train a preset-sized GPT-2 on shipped books with CE or GAPT; held-out CE and MBE per layer."""
    from rotelab.entropy.gapt import GateConfig
    from rotelab.entropy.gapt_train import GaptConfig
    from rotelab.entropy.lm_train import LMTrainConfig, train_lm
    from rotelab.testbed.presets import get_preset

    get_preset(preset)
    for name, v in (("--steps", steps), ("--batch-size", batch_size), ("--p-m", p_m), ("--p-a", p_a)):
        _check(v >= 1, f"{name} must be >= 1; got {v}")
    _check(n_layer is None or n_layer >= 1, f"--n-layer must be >= 1; got {n_layer}")
    _check(patch >= 2, f"--patch must be >= 2; got {patch}")
    _check(lr > 0, f"--lr must be > 0; got {lr}")
    _check(max_passages is None or max_passages >= 10, f"--max-passages must be >= 10; got {max_passages}")
    gate = GateConfig(variant=variant.value, p_m=p_m, p_a=p_a, tau_m=tau_m, tau_a=tau_a, tau_spike=tau_spike)
    gcfg = GaptConfig(objective=objective.value, steps=steps, lr=lr, warmup_steps=min(50, steps // 10), mbe_weight=mbe_weight, patch=patch, layers=layers.value, gate=gate)
    cfg = LMTrainConfig(preset=preset, gapt=gcfg, n_layer=n_layer, batch_size=batch_size, max_passages=max_passages, seed=seed)
    run = open_run(out, "entropy train", asdict(cfg), seed=seed)
    result = train_lm(cfg, run, progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)
