"""``rotelab verify``: a root command, registered here like every capability's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import COMMANDS, BatchOpt, CacheOpts, ModelOpts, RunOpts, SeedOpt, bundled, emit_run

PathOpt = Optional[Path]


@bundled
def verify(
    model: ModelOpts,
    run: RunOpts,
    cache: CacheOpts,
    forget: Annotated[PathOpt, typer.Option("--forget", help="JSONL of the forgotten samples (default: an unlearning folder's testbed split).")] = None,
    retain: Annotated[PathOpt, typer.Option("--retain", help="JSONL of retained samples (default: the testbed's).")] = None,
    holdout: Annotated[PathOpt, typer.Option("--holdout", help="JSONL of never-seen samples of the same distribution (default: the testbed's).")] = None,
    original: Annotated[PathOpt, typer.Option("--original", help="The model before unlearning (default: an unlearning folder's testbed model).")] = None,
    retrained: Annotated[PathOpt, typer.Option("--retrained", help="A model trained without the forget set: Forget Quality and oracle distance.")] = None,
    relearn: Annotated[PathOpt, typer.Option("--relearn", help="JSONL of the forget set's distribution, disjoint from it: relearning attack (b) (default: the testbed's).")] = None,
    perturbed: Annotated[PathOpt, typer.Option("--perturbed", help="JSONL rows id, text, answer, perturbed (wrong answers) for the forget ids: truth ratios (default: the testbed's).")] = None,
    delta: Annotated[float, typer.Option("--delta", help="An attack detects when its AUC exceeds 0.5 + delta (95%, Holm across attacks).")] = 0.05,
    alpha: Annotated[float, typer.Option("--alpha", help="Family-wise error of the detections (Holm).")] = 0.05,
    attacks: Annotated[str, typer.Option("--attacks", help="Membership attacks on the unlearned model (direct evidence).")] = "loss,zlib,mink,minkpp",
    quantize: Annotated[str, typer.Option("--quantize", help="Bit widths of the quantization attack, comma-separated ('' for none).")] = "8,4",
    relearn_steps: Annotated[int, typer.Option("--relearn-steps", help="Fine-tuning steps of the relearning attack (0: none).")] = 20,
    relearn_lr: Annotated[float, typer.Option("--relearn-lr", help="Learning rate of the relearning attack.")] = 1e-3,
    no_remind: Annotated[bool, typer.Option("--no-remind", help="Skip REMIND.")] = False,
    extract_prefix: Annotated[int, typer.Option("--extract-prefix", help="Extraction: prompt tokens per sample.")] = 12,
    extract_suffix: Annotated[int, typer.Option("--extract-suffix", help="Extraction: greedy tokens compared to the sample's.")] = 8,
    batch_size: BatchOpt = 32,
    seed: SeedOpt = 0,
):
    """Is unlearned data gone or only hidden? Membership suite, REMIND, extraction, relearning and quantization attacks; one verdict."""
    from rotelab.errors import RotelabError
    from rotelab.verify.api import VerifyConfig, verify as api
    from rotelab.verify.attacks import RelearnConfig

    try:
        bits = tuple(int(b) for b in quantize.split(",") if b.strip())
    except ValueError:
        raise RotelabError(f"--quantize must be comma-separated integers; got '{quantize}'") from None
    config = VerifyConfig(delta=delta, alpha=alpha, attacks=attacks, quantize_bits=bits, relearn=RelearnConfig(steps=relearn_steps, lr=relearn_lr, seed=seed),
                          remind=not no_remind, extract_prefix=extract_prefix, extract_suffix=extract_suffix, batch_size=batch_size, seed=seed)
    out = run.out_dir("verify")
    result = api(model.path, forget=forget, retain=retain, holdout=holdout, original=original, retrained=retrained, relearn=relearn, perturbed=perturbed,
                 out=out, config=config, load=model.load_options(), cache=cache.open(), overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


COMMANDS.register("verify", verify, order=60)
