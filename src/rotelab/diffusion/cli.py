"""``rotelab diffusion ...``: testbed, detection, mitigations, DoRI trigger search, locality.

Each command parses, builds a config, calls its entry point in :mod:`rotelab.diffusion.api` once
and prints the result. ``--model`` is a diffusers pipeline folder, not a language model, so these
commands take their own ``--model`` rather than the language-model options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import RunOpts, SeedOpt, command, emit_run, group
from rotelab.diffusion.mitigate import MITIGATIONS

app = group("diffusion", help="Text-to-image diffusion memorization: replication, detection, pruning mitigations, DoRI, locality.")
testbed_app = typer.Typer(no_args_is_help=True, help="The diffusion testbed.")
app.add_typer(testbed_app, name="testbed")

_METHODS = sorted(MITIGATIONS.entries(), key=lambda e: e.meta.get("order", 50))

ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="A diffusers pipeline folder (unet/, text_encoder/, scheduler/, optional vae/, tokenizer; safetensors weights), or a testbed / adversarial run folder.")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", "-d", help="JSONL: text, label (1 = memorized), image (path relative to the file); default: the testbed's items.jsonl.")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Replication threshold τ on the centred pixel cosine, in [-1, 1] (curves over τ are always written).")]
SeedsOpt = Annotated[int, typer.Option("--n-seeds", help="Generations per prompt (or per found trigger) to measure replication.")]


@command(testbed_app, "build")
def testbed_build(run: RunOpts,
                  preset: Annotated[str, typer.Option("--preset", help="tiny (tests, 8x8, ~1 min), small (the experiment, 8x8, ~5 min), small16 (16x16, 2000 steps, ~30+ min on 2 busy cores).")] = "small",
                  steps: Annotated[Optional[int], typer.Option("--steps", help="Override the preset's training steps.")] = None,
                  seed: SeedOpt = 0):
    """Train a tiny text-to-image UNet whose memorized, singleton and unseen pairs are known."""
    from rotelab.diffusion import api

    out = run.out_dir("diffusion testbed build")
    emit_run(api.testbed_build(out=out, preset=preset, steps=steps, seed=seed, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "detect")
def detect(model: ModelOpt, run: RunOpts, data: DataOpt = None,
           n_noises: Annotated[int, typer.Option("--n-noises", help="Noises per prompt for Wen et al.")] = 8,
           n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7):
    """Wen et al. detection (AUC), trigger tokens, and replication rate per prompt."""
    from rotelab.diffusion import api

    out = run.out_dir("diffusion detect")
    emit_run(api.detect(model, data, out=out, n_noises=n_noises, n_seeds=n_seeds, threshold=threshold, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "mitigate")
def mitigate(model: ModelOpt, run: RunOpts,
             method: Annotated[str, typer.Option("--method", help=" | ".join(e.name for e in _METHODS) + ". " + " ".join(f"{e.name}: {e.doc}" for e in _METHODS))],
             data: DataOpt = None, n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7,
             adv_steps: Annotated[int, typer.Option("--adv-steps", help="Fine-tuning steps (adversarial).")] = 200,
             pruning: Annotated[Optional[Path], typer.Option("--pruning", help="A 'diffusion mitigate' run folder of a per-prompt mitigation whose generations become the surrogates (adversarial; default: a new NeMo search).")] = None,
             seed: SeedOpt = 0):
    """Mitigate the memorized prompts (label 1) and measure that replication stops."""
    from rotelab.diffusion import api

    config = MITIGATIONS.get(method, option="--method").obj.make_config(steps=adv_steps, seed=seed)
    out = run.out_dir("diffusion mitigate")
    result = api.mitigate(model, data, method=method, config=config, pruning=pruning, out=out, n_seeds=n_seeds, threshold=threshold,
                          overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


@command(app, "dori")
def dori(model: ModelOpt, run: RunOpts, data: DataOpt = None,
         mitigation: Annotated[Optional[Path], typer.Option("--mitigation", help="A 'diffusion mitigate' run folder of a per-prompt mitigation (" + " | ".join(e.name for e in _METHODS if e.meta.get("per_prompt")) + ") to attack.")] = None,
         init: Annotated[str, typer.Option("--init", help="Start from the prompt's embedding (prompt), a Gaussian (gaussian), or another prompt's (other).")] = "prompt",
         starts: Annotated[int, typer.Option("--starts", help="DoRI runs per image.")] = 1,
         steps: Annotated[int, typer.Option("--steps", help="Adam steps of each trigger search.")] = 50,
         lr: Annotated[float, typer.Option("--lr", help="Adam learning rate of the trigger search (the paper's 0.1).")] = 0.1,
         n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7, seed: SeedOpt = 0):
    """DoRI: optimise a text embedding toward each image with the denoising loss; measure replication."""
    from rotelab.diffusion import api
    from rotelab.diffusion.dori import DoriConfig

    out = run.out_dir("diffusion dori")
    result = api.dori(model, data, mitigation=mitigation, init=init, starts=starts, config=DoriConfig(steps=steps, lr=lr, n_eval_seeds=n_seeds),
                      threshold=threshold, seed=seed, out=out, overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


@command(app, "locality")
def locality(model: ModelOpt, run: RunOpts, data: DataOpt = None,
             item: Annotated[Optional[str], typer.Option("--item", help="Id of the memorized item (default: the first with label 1 and an image).")] = None,
             starts: Annotated[int, typer.Option("--starts", help="DoRI runs from Gaussian starts (at least 2).")] = 16,
             steps: Annotated[int, typer.Option("--steps", help="Adam steps of each trigger search.")] = 50,
             max_selections: Annotated[Optional[int], typer.Option("--max-selections", help="NeMo / Wanda selections on at most this many triggers (default: all; each costs tens of generations).")] = None,
             n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7, seed: SeedOpt = 0):
    """Spread of triggers for one image, their activation discrepancy, IoU of pruning selections."""
    from rotelab.diffusion import api
    from rotelab.diffusion.dori import DoriConfig

    out = run.out_dir("diffusion locality")
    result = api.locality(model, data, item=item, starts=starts, config=DoriConfig(steps=steps, n_eval_seeds=n_seeds), threshold=threshold, seed=seed,
                          max_selections=max_selections, out=out, overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)
