"""``rotelab entropy``: matrix-based entropy per layer (``mbe``) and CE / GAPT training (``train``).

Thin commands over :mod:`rotelab.entropy.api`: parse, build the config, call the API once, print.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import BatchOpt, ModelOpts, RunOpts, SeedOpt, command, emit_run, group

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


@command(app, "mbe")
def mbe(
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL with 'text' (optional 'id', and 'label' or 'split' to compare groups).")],
    model: ModelOpts,
    run: RunOpts,
    patch: PatchOpt = 8,
    alpha: Annotated[float, typer.Option("--alpha", help="Rényi order (2: the paper's closed form; other values use eigenvalues).")] = 2.0,
    batch_size: BatchOpt = 16,
    seed: SeedOpt = 0,
):
    """MBE per layer of any causal LM over a JSONL file, with a per-layer plot."""
    from rotelab.entropy.api import mbe as api
    from rotelab.entropy.measure import MBEConfig

    out = run.out_dir("entropy mbe")
    cfg = MBEConfig(patch=patch, alpha=alpha, batch_size=batch_size, seed=seed)
    emit_run(api(model.path, data, out=out, config=cfg, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "train")
def train(
    run: RunOpts,
    preset: Annotated[str, typer.Option("--preset", help="Testbed preset: model size and books (tiny | small).")] = "tiny",
    objective: Annotated[Objective, typer.Option("--objective", help="ce: cross-entropy only; gapt: gated CE / CE + w·MBE phases.")] = Objective.gapt,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps (the same budget for both objectives).")] = 300,
    n_layer: Annotated[Optional[int], typer.Option("--n-layer", help="Blocks (default: the preset's; GAPT skips the first and last).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Passages per optimizer step.")] = 16,
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
):
    """Train a preset-sized GPT-2 on shipped books with CE or GAPT; held-out CE and MBE per layer."""
    from rotelab.entropy.api import train as api
    from rotelab.entropy.gapt import GateConfig
    from rotelab.entropy.gapt_train import GaptConfig
    from rotelab.entropy.lm_train import LMTrainConfig

    gate = GateConfig(variant=variant.value, p_m=p_m, p_a=p_a, tau_m=tau_m, tau_a=tau_a, tau_spike=tau_spike)
    gcfg = GaptConfig(objective=objective.value, steps=steps, lr=lr, warmup_steps=min(50, max(steps, 0) // 10), mbe_weight=mbe_weight, patch=patch, layers=layers.value, gate=gate)
    cfg = LMTrainConfig(preset=preset, gapt=gcfg, n_layer=n_layer, batch_size=batch_size, max_passages=max_passages, seed=seed)
    out = run.out_dir("entropy train")
    emit_run(api(config=cfg, out=out, overwrite=run.overwrite, progress=run.progress), run, out)
