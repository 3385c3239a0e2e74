"""Python entry points of ``rotelab diffusion ...``, one per command.

Each validates every input (model folder, items, thresholds, steps, item id, mitigation folder),
then loads the model, and only then opens its run folder (so bad input leaves nothing behind),
computes, builds the report and returns the result dict. ``model`` is a diffusers pipeline folder
(or a testbed / adversarial run folder: its ``model/``) or a loaded :class:`DiffusionModel`;
``data`` is an items JSONL, a list of item dicts (``text``, optional ``id``, ``label`` 1 =
memorized, ``image`` path), or None for the testbed's own ``items.jsonl``.

>>> # tb = rotelab.diffusion.api.testbed_build(out="runs/dtb", preset="tiny")
>>> # rotelab.diffusion.api.mitigate("runs/dtb", method="nemo", out="runs/nemo")
>>> # rotelab.diffusion.api.dori("runs/dtb", mitigation="runs/nemo", out="runs/nemo-dori")
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.diffusion.dori import DoriConfig
    from rotelab.diffusion.mitigate import Mitigation
    from rotelab.diffusion.model import DiffusionModel

# Paths are recorded in the manifest, but the run's identity is their content (hashes, fingerprints).
_PATHS = ("model", "data", "mitigation", "pruning")


# -- validation -----------------------------------------------------------------------------------
def _at_least(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise RotelabError(f"{name} must be >= {lo}; got {value}")


def _threshold(value: float) -> None:
    if not -1 <= value <= 1:
        raise RotelabError(f"--threshold must be in [-1, 1]; got {value}")


def _check_dori(cfg: "DoriConfig") -> None:
    _at_least("--steps", cfg.steps, 1)
    _at_least("--n-seeds", cfg.n_eval_seeds, 1)
    _at_least("DoriConfig.batch_size", cfg.batch_size, 1)
    _at_least("DoriConfig.sample_steps", cfg.sample_steps, 1)
    if not cfg.lr > 0:
        raise RotelabError(f"--lr must be > 0; got {cfg.lr}")


def as_diffusion_model(model: "DiffusionModel | Path | str") -> "DiffusionModel":
    """A loaded model passes through; a folder is checked (one line if it is not a pipeline) and loaded."""
    from rotelab.diffusion.model import DiffusionModel, pipeline_folder

    if isinstance(model, DiffusionModel):
        return model
    folder = pipeline_folder(model)
    try:
        return DiffusionModel.load(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:  # a broken config or weight file
        raise RotelabError(f"{folder}: cannot load the pipeline ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None


def as_items(data: Path | str | Sequence[dict] | None, model: "DiffusionModel", *, model_arg: Any = None) -> tuple[list[dict], Path | None]:
    """Validated items and the file they came from (None for in-memory items).

    ``data`` None: the testbed's ``items.jsonl`` beside the model (``--model`` a testbed folder or its ``model/``).
    """
    from rotelab.diffusion.testbed import check_item, read_items

    if data is None:
        roots = [Path(p) for p in (model_arg, model.path) if isinstance(p, (str, Path))]
        roots += [p.parent for p in roots]
        file = next((r / "items.jsonl" for r in roots if (r / "items.jsonl").is_file()), None)
        if file is None:
            raise RotelabError(f"--data is needed: {model_arg or model.path or 'the model'} is not a testbed folder (no items.jsonl)")
        data = file
    if isinstance(data, (str, Path)):
        path = Path(data)
        items = read_items(path)
        file = path / "items.jsonl" if path.is_dir() else path
    else:
        rows, items, file = list(data), [], None
        if not rows:
            raise RotelabError("data: no items")
        for i, row in enumerate(rows):
            row = {"id": f"items:{i}", **row} if isinstance(row, dict) and row.get("id") is None else row
            items.append(check_item(row, f"data item {i}"))
        ids = [it["id"] for it in items]
        dup = next((x for x in ids if ids.count(x) > 1), None)
        if dup is not None:
            raise RotelabError(f"data: duplicate id '{dup}'")
    model.check_texts([it["text"] for it in items], where=str(file or "data"))
    return items, file


def items_digest(items: list[dict]) -> str:
    """SHA-256 of what results depend on: ids, texts, labels, splits and the image files' bytes."""
    h = hashlib.sha256()
    for it in items:
        img = hashlib.sha256(Path(it["image"]).read_bytes()).hexdigest() if it.get("image") else None
        h.update(json.dumps([it["id"], it["text"], it["label"], it.get("split", ""), img]).encode())
    return h.hexdigest()


def _memorized_with_images(items: list[dict], file: Path | None) -> list[dict]:
    mem = [it for it in items if it["label"] == 1 and "image" in it]
    if not mem:
        raise RotelabError(f"{file or 'data'}: no memorized item (label 1) with an image")
    return mem


def _as_mitigation(m: "Mitigation | Path | str", option: str, model: "DiffusionModel") -> tuple["Mitigation", Path | None]:
    """A per-prompt mitigation of this model, loaded from its run folder or passed in."""
    from rotelab.diffusion.mitigate import FILE, MITIGATIONS, Mitigation, load_mitigation

    if isinstance(m, Mitigation):
        mit, file = m, None
    else:
        mit, file = load_mitigation(m), Path(m) / FILE
    if not MITIGATIONS[mit.name].meta.get("per_prompt"):
        raise RotelabError(f"{option} {m}: a {mit.name} mitigation changes the model, it is not applied per prompt; pass its run folder as --model")
    if mit.model_fingerprint and mit.model_fingerprint != model.fingerprint:
        raise RotelabError(f"{option} {m}: it was computed on another model than --model (fingerprint {mit.model_fingerprint} vs {model.fingerprint})")
    return mit, file


def _options(model: Any, data: Any, **rest: Any) -> dict:
    return {"model": str(model) if isinstance(model, (str, Path)) else "in memory",
            "data": str(data) if isinstance(data, (str, Path)) else ("testbed items" if data is None else "in memory"), **rest}


def _finish(run) -> None:
    from rotelab.report import build_report

    build_report(run.path)


# -- entry points ---------------------------------------------------------------------------------
def testbed_build(*, out: Path | str | None = None, preset: str = "small", steps: int | None = None, seed: int = 0,
                  overwrite: bool = False, progress: bool = True) -> dict:
    """Train a tiny text-to-image UNet whose memorized, singleton and unseen pairs are known.

    Writes ``items.jsonl``, ``images/``, ``model/`` (safetensors), ``train.json``; resumes an
    interrupted training from its safetensors checkpoint. Presets: :data:`rotelab.diffusion.testbed.PRESETS`.
    """
    from rotelab.core.io import read_json
    from rotelab.core.runs import open_run
    from rotelab.diffusion.testbed import PRESETS, build_testbed

    if preset not in PRESETS:
        raise RotelabError(f"--preset must be one of {', '.join(PRESETS)}; got '{preset}'")
    if steps is not None:
        _at_least("--steps", steps, 1)
    _at_least("--seed", seed, 0)
    cfg = replace(PRESETS[preset], seed=seed, **({"steps": steps} if steps else {}))
    with open_run(out, "diffusion testbed build", {"preset": preset, **asdict(cfg)}, seed=seed, overwrite=overwrite) as run:
        res = run.step("train", lambda: build_testbed(run.path, cfg, progress=progress))
        if res is None:
            res = {k: v for k, v in read_json(run.file("train.json")).items() if k != "losses"}
        run.write_json("testbed.json", res)
        _finish(run)
    return res


def detect(model: "DiffusionModel | Path | str", data: Path | str | Sequence[dict] | None = None, *, out: Path | str | None = None,
           n_noises: int = 8, n_seeds: int = 4, threshold: float = 0.7, overwrite: bool = False, progress: bool = True) -> dict:
    """Wen et al. detection (AUC of memorized vs the rest), trigger tokens of memorized prompts, and
    the replication rate per group (items with images)."""
    from rotelab.core.runs import open_run
    from rotelab.diffusion.workflows import run_detect

    _at_least("--n-noises", n_noises, 1)
    _at_least("--n-seeds", n_seeds, 1)
    _threshold(threshold)
    m = as_diffusion_model(model)
    items, file = as_items(data, m, model_arg=model)
    opts = _options(model, data, items=items_digest(items), n_noises=n_noises, n_seeds=n_seeds, threshold=threshold)
    with open_run(out, "diffusion detect", opts, inputs={"data": file}, models={"model": m.fingerprint}, overwrite=overwrite, volatile=_PATHS) as run:
        result = run_detect(run, m, items, n_noises=n_noises, n_seeds=n_seeds, threshold=threshold, progress=progress)
        _finish(run)
    return result


def mitigate(model: "DiffusionModel | Path | str", data: Path | str | Sequence[dict] | None = None, *, method: str = "nemo", config: Any = None,
             pruning: "Mitigation | Path | str | None" = None, out: Path | str | None = None, n_seeds: int = 4, threshold: float = 0.7,
             overwrite: bool = False, progress: bool = True) -> dict:
    """Find a mitigation (``method``: a name in :data:`rotelab.diffusion.mitigate.MITIGATIONS`) for the
    memorized prompts (label 1) and measure that their replication stops, and at what held-out cost.

    ``config``: the method's ``Config`` (e.g. :class:`~rotelab.diffusion.adversarial.AdversarialConfig`).
    ``pruning``: for methods that build on a per-prompt pruning (adversarial), an existing one to
    reuse (a ``mitigate`` run folder or object) instead of searching again.
    """
    from rotelab.core.runs import open_run
    from rotelab.diffusion.mitigate import MITIGATIONS
    from rotelab.diffusion.workflows import run_mitigate

    entry = MITIGATIONS.get(method, option="--method")
    if pruning is not None and not entry.meta.get("reuses_pruning"):
        raise RotelabError(f"--pruning: {method} does not build on a pruning; only {', '.join(n for n in MITIGATIONS.names() if MITIGATIONS[n].meta.get('reuses_pruning'))} do")
    mit = entry.obj(config)
    mit.check_config()
    _at_least("--n-seeds", n_seeds, 1)
    _threshold(threshold)
    m = as_diffusion_model(model)
    items, file = as_items(data, m, model_arg=model)
    pruning_file = None
    if pruning is not None:
        reused, pruning_file = _as_mitigation(pruning, "--pruning", m)
        mit = entry.obj(mit.config, pruning=reused)
    _memorized_with_images(items, file)
    mit.check_items(items, file)
    opts = _options(model, data, items=items_digest(items), method=method, config=asdict(mit.config), n_seeds=n_seeds, threshold=threshold,
                    pruning=str(pruning) if isinstance(pruning, (str, Path)) else (None if pruning is None else "in memory"))
    with open_run(out, "diffusion mitigate", opts, seed=getattr(mit.config, "seed", None), inputs={"data": file, "pruning": pruning_file},
                  models={"model": m.fingerprint, **({"pruning": pruning.model_fingerprint or ""} if pruning is not None and pruning_file is None else {})},
                  overwrite=overwrite, volatile=_PATHS) as run:
        result = run_mitigate(run, m, items, mit, n_seeds=n_seeds, threshold=threshold, progress=progress)
        _finish(run)
    return result


def dori(model: "DiffusionModel | Path | str", data: Path | str | Sequence[dict] | None = None, *, mitigation: "Mitigation | Path | str | None" = None,
         init: str = "prompt", starts: int = 1, config: "DoriConfig | None" = None, threshold: float = 0.7, seed: int = 0,
         out: Path | str | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """DoRI: optimise a text embedding toward each item's image with the denoising loss (under the
    item's per-prompt ``mitigation``, when given) and measure replication of the result."""
    from rotelab.core.runs import open_run
    from rotelab.diffusion.dori import INITS, DoriConfig
    from rotelab.diffusion.workflows import run_dori

    cfg = config if config is not None else DoriConfig()
    _check_dori(cfg)
    if init not in INITS:
        raise RotelabError(f"--init must be one of {', '.join(INITS)}; got '{init}'")
    _at_least("--starts", starts, 1)
    _at_least("--seed", seed, 0)
    _threshold(threshold)
    m = as_diffusion_model(model)
    items, file = as_items(data, m, model_arg=model)
    if not any("image" in it for it in items):
        raise RotelabError(f"{file or 'data'}: no item with an image (DoRI searches toward images)")
    mit, mit_file = _as_mitigation(mitigation, "--mitigation", m) if mitigation is not None else (None, None)
    opts = _options(model, data, items=items_digest(items), init=init, starts=starts, dori=asdict(cfg), threshold=threshold,
                    mitigation=str(mitigation) if isinstance(mitigation, (str, Path)) else (None if mitigation is None else "in memory"))
    models = {"model": m.fingerprint, **({"mitigation": mit.model_fingerprint or ""} if mit is not None and mit_file is None else {})}
    with open_run(out, "diffusion dori", opts, seed=seed, inputs={"data": file, "mitigation": mit_file}, models=models,
                  overwrite=overwrite, volatile=_PATHS) as run:
        result = run_dori(run, m, items, mitigation=mit, init=init, starts=starts, cfg=cfg, threshold=threshold, seed=seed, progress=progress)
        _finish(run)
    return result


def locality(model: "DiffusionModel | Path | str", data: Path | str | Sequence[dict] | None = None, *, item: str | None = None, starts: int = 16,
             config: "DoriConfig | None" = None, threshold: float = 0.7, seed: int = 0, max_selections: int | None = None,
             out: Path | str | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Triggers from Gaussian starts for one memorized image (``item``; default the first): their
    spread, activation discrepancy, and the IoU of NeMo / Wanda selections made from them.

    ``max_selections``: NeMo / Wanda selections on at most this many triggers (each costs tens of generations).
    """
    from rotelab.core.runs import open_run
    from rotelab.diffusion.dori import DoriConfig
    from rotelab.diffusion.mitigate import check_calibration
    from rotelab.diffusion.workflows import run_locality

    cfg = config if config is not None else DoriConfig()
    _check_dori(cfg)
    _at_least("--starts", starts, 2)
    _at_least("--seed", seed, 0)
    if max_selections is not None:
        _at_least("max_selections", max_selections, 1)
    _threshold(threshold)
    m = as_diffusion_model(model)
    items, file = as_items(data, m, model_arg=model)
    mem = [it["id"] for it in _memorized_with_images(items, file)]
    if item is None:
        item = mem[0]
    elif item not in mem:
        raise RotelabError(f"--item {item!r}: not a memorized item with an image in {file or 'data'}; available: {', '.join(mem[:10])}")
    check_calibration(items, file)
    opts = _options(model, data, items=items_digest(items), item=item, starts=starts, dori=asdict(cfg), threshold=threshold, max_selections=max_selections)
    with open_run(out, "diffusion locality", opts, seed=seed, inputs={"data": file}, models={"model": m.fingerprint},
                  overwrite=overwrite, volatile=_PATHS) as run:
        result = run_locality(run, m, items, item, starts=starts, cfg=cfg, threshold=threshold, seed=seed, max_selections=max_selections, progress=progress)
        _finish(run)
    return result
