"""``rotelab diffusion ...``: testbed, detection, mitigations, DoRI trigger search, locality."""

from __future__ import annotations

from dataclasses import asdict, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import group, JsonOpt, OutOpt, QuietOpt, SeedOpt, finish, open_run
from rotelab.errors import RotelabError

app = group("diffusion", help="Text-to-image diffusion memorization: replication, detection, pruning mitigations, DoRI, locality.")
testbed_app = typer.Typer(no_args_is_help=True, help="The diffusion testbed.")
app.add_typer(testbed_app, name="testbed")


class Preset(str, Enum):
    tiny = "tiny"
    small = "small"
    small16 = "small16"


class Method(str, Enum):
    nemo = "nemo"
    wanda = "wanda"
    adversarial = "adversarial"


class Init(str, Enum):
    prompt = "prompt"
    gaussian = "gaussian"
    other = "other"


ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="A diffusers pipeline folder (unet/ text_encoder/ scheduler/ [vae/] tokenizer), or a testbed / adversarial run folder.")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", "-d", help="JSONL: text, label (1 = memorized), image (path relative to the file); default: the testbed's items.jsonl.")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Replication threshold τ on the centred pixel cosine (curves over τ are always written).")]
SeedsOpt = Annotated[int, typer.Option("--n-seeds", help="Generations per prompt.")]


def _load(model: Path, data: Path | None):
    """Validate --model and --data before any run folder exists."""
    from rotelab.diffusion.model import DiffusionModel
    from rotelab.diffusion.testbed import read_items

    if not model.exists():
        raise RotelabError(f"--model {model}: not found")
    if data is None:
        root = model if (model / "items.jsonl").exists() else model.parent
        if not (root / "items.jsonl").exists():
            raise RotelabError(f"--data is needed: {model} is not a testbed folder (no items.jsonl)")
        data = root / "items.jsonl"
    items = read_items(data)
    return DiffusionModel.load(model), items, data


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise RotelabError(f"{name} must be in [{lo}, {hi}]; got {value}")


@testbed_app.command("build")
def testbed_build(preset: Annotated[Preset, typer.Option("--preset", help="tiny (tests, 8x8, ~1 min), small (the experiment, 8x8, ~5 min), small16 (16x16, 2000 steps, ~30+ min on 2 busy cores).")] = Preset.small,
                  steps: Annotated[Optional[int], typer.Option("--steps", help="Override the preset's training steps.")] = None,
                  out: OutOpt = None, seed: SeedOpt = 0, json_out: JsonOpt = False, quiet: QuietOpt = False):
    """Train a tiny text-to-image UNet whose memorized, singleton and unseen pairs are known."""
    from rotelab.diffusion.testbed import PRESETS, build_testbed

    if steps is not None and steps < 1:
        raise RotelabError(f"--steps must be >= 1; got {steps}")
    cfg = replace(PRESETS[preset.value], seed=seed, **({"steps": steps} if steps else {}))
    run = open_run(out, "diffusion testbed build", {"preset": preset.value, **asdict(cfg)}, seed=seed)
    res = run.step("train", lambda: build_testbed(run.path, cfg, progress=not quiet))
    if res is None:
        from rotelab.core.io import read_json

        res = {k: v for k, v in read_json(run.file("train.json")).items() if k != "losses"}
    run.write_json("testbed.json", res)
    finish(run, res, as_json=json_out, quiet=quiet)


@app.command()
def detect(model: ModelOpt, data: DataOpt = None, n_noises: Annotated[int, typer.Option("--n-noises", help="Noises per prompt for Wen et al.")] = 8,
           n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7, out: OutOpt = None, json_out: JsonOpt = False, quiet: QuietOpt = False):
    """Wen et al. detection (AUC), trigger tokens, and replication rate per prompt."""
    from rotelab.diffusion.workflows import run_detect

    _check("--threshold", threshold, -1, 1)
    m, items, data = _load(model, data)
    run = open_run(out, "diffusion detect", dict(model=model, data=data, n_noises=n_noises, n_seeds=n_seeds, threshold=threshold))
    run.add_input("data", data)
    finish(run, run_detect(run, m, items, n_noises=n_noises, n_seeds=n_seeds, threshold=threshold, progress=not quiet), as_json=json_out, quiet=quiet)


@app.command("mitigate")
def mitigate_cmd(model: ModelOpt, method: Annotated[Method, typer.Option("--method", help="nemo | wanda | adversarial")],
                 data: DataOpt = None, n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7,
                 adv_steps: Annotated[int, typer.Option("--adv-steps", help="Adversarial fine-tuning steps.")] = 200,
                 out: OutOpt = None, seed: SeedOpt = 0, json_out: JsonOpt = False, quiet: QuietOpt = False):
    """Mitigate the memorized prompts (label 1) and measure that replication stops."""
    from rotelab.diffusion.adversarial import AdversarialConfig
    from rotelab.diffusion.workflows import run_mitigate

    _check("--threshold", threshold, -1, 1)
    if adv_steps < 1:
        raise RotelabError(f"--adv-steps must be >= 1; got {adv_steps}")
    m, items, data = _load(model, data)
    if not any(it["label"] == 1 and "image" in it for it in items):
        raise RotelabError(f"{data}: no memorized item (label 1) with an image")
    cfg = AdversarialConfig(steps=adv_steps, seed=seed)
    run = open_run(out, "diffusion mitigate", dict(model=model, data=data, method=method.value, n_seeds=n_seeds, threshold=threshold, adversarial=asdict(cfg)), seed=seed)
    run.add_input("data", data)
    finish(run, run_mitigate(run, m, items, method.value, n_seeds=n_seeds, threshold=threshold, adv_cfg=cfg, progress=not quiet), as_json=json_out, quiet=quiet)


@app.command()
def dori(model: ModelOpt, data: DataOpt = None,
         mitigation: Annotated[Optional[Path], typer.Option("--mitigation", help="A 'diffusion mitigate --method nemo|wanda' run folder to attack.")] = None,
         init: Annotated[Init, typer.Option("--init", help="Start from the prompt's embedding, a Gaussian, or another prompt's.")] = Init.prompt,
         starts: Annotated[int, typer.Option("--starts", help="DoRI runs per image.")] = 1,
         steps: Annotated[int, typer.Option("--steps", help="Adam steps.")] = 50,
         lr: Annotated[float, typer.Option("--lr")] = 0.1,
         n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7, out: OutOpt = None, seed: SeedOpt = 0, json_out: JsonOpt = False, quiet: QuietOpt = False):
    """DoRI: optimise a text embedding toward each image with the denoising loss; measure replication."""
    from rotelab.diffusion import mitigate as mit
    from rotelab.diffusion.dori import DoriConfig
    from rotelab.diffusion.workflows import run_dori

    _check("--threshold", threshold, -1, 1)
    for name, v in (("--starts", starts), ("--steps", steps), ("--n-seeds", n_seeds)):
        if v < 1:
            raise RotelabError(f"{name} must be >= 1; got {v}")
    m, items, data = _load(model, data)
    mit_obj = mit.load(mitigation) if mitigation is not None else None
    cfg = DoriConfig(steps=steps, lr=lr, n_eval_seeds=n_seeds)
    run = open_run(out, "diffusion dori", dict(model=model, data=data, mitigation=mitigation, init=init.value, starts=starts, dori=asdict(cfg), threshold=threshold), seed=seed)
    run.add_input("data", data)
    res = run_dori(run, m, items, mitigation=mit_obj, init=init.value, starts=starts, cfg=cfg, threshold=threshold, seed=seed, progress=not quiet)
    finish(run, res, as_json=json_out, quiet=quiet)


@app.command("locality")
def locality_cmd(model: ModelOpt, data: DataOpt = None,
                 item: Annotated[Optional[str], typer.Option("--item", help="Id of the memorized item (default: the first with label 1).")] = None,
                 starts: Annotated[int, typer.Option("--starts", help="DoRI runs from Gaussian starts.")] = 16,
                 steps: Annotated[int, typer.Option("--steps")] = 50,
                 n_seeds: SeedsOpt = 4, threshold: ThresholdOpt = 0.7, out: OutOpt = None, seed: SeedOpt = 0, json_out: JsonOpt = False, quiet: QuietOpt = False):
    """Spread of triggers for one image, their activation discrepancy, IoU of pruning selections."""
    from rotelab.diffusion.dori import DoriConfig
    from rotelab.diffusion.workflows import run_locality

    if starts < 2:
        raise RotelabError(f"--starts must be >= 2; got {starts}")
    m, items, data = _load(model, data)
    mem = [it["id"] for it in items if it["label"] == 1 and "image" in it]
    if item is None:
        if not mem:
            raise RotelabError(f"{data}: no memorized item (label 1) with an image")
        item = mem[0]
    elif item not in mem:
        raise RotelabError(f"--item {item!r}: not a memorized item with an image in {data}; available: {', '.join(mem[:10])}")
    cfg = DoriConfig(steps=steps, n_eval_seeds=n_seeds)
    run = open_run(out, "diffusion locality", dict(model=model, data=data, item=item, starts=starts, dori=asdict(cfg), threshold=threshold), seed=seed)
    run.add_input("data", data)
    finish(run, run_locality(run, m, items, item, starts=starts, cfg=cfg, threshold=threshold, seed=seed, progress=not quiet), as_json=json_out, quiet=quiet)
