"""The Python API of ``rotelab clinical``: one entry point per command.

Each validates its configuration and inputs (every MEDS shard, the vocabulary, the context)
before its run folder exists, loads the model, opens the run folder, computes (resumable steps),
builds the report and returns what the command prints::

    from rotelab.clinical.api import audit, synth, train
    from rotelab.clinical.config import AuditConfig, synth_preset, train_preset

    data = synth(out="runs/cohort", config=synth_preset("tiny"))["data"]
    model = train(data, out="runs/ehr-model", config=train_preset("tiny"))["model"]
    result = audit(model, data, out="runs/audit", config=AuditConfig(n_samples=20))
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotelab.clinical.config import AuditConfig, SynthConfig, TrainConfig, synth_preset
from rotelab.core.models import LoadOptions
from rotelab.core.runs import open_run
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel


def synth(*, out: Path | str | None = None, config: SynthConfig = synth_preset("small"), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write a seeded synthetic MEDS cohort with planted ground truth; the run folder is the MEDS root.

    Returns the counts (subjects per split, canary copies) and ``data``, the folder to pass on.
    """
    from rotelab.clinical.synth import write_synthetic
    from rotelab.core.io import read_json
    from rotelab.report import build_report

    cfg = config.check()
    with open_run(out, "clinical synth", asdict(cfg), seed=cfg.seed, overwrite=overwrite) as run:
        res = run.step("synth", lambda: _written(run, write_synthetic(run.path, cfg)), load=lambda: read_json(run.file("synth.json")))
        build_report(run.path)
    return res | {"data": str(run.path)}


def _written(run, res: dict) -> dict:
    run.write_json("synth.json", res)
    return res


def train(data: Path | str, *, out: Path | str | None = None, config: TrainConfig = TrainConfig(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the EHR foundation model on the train split of a MEDS dataset; saves ``<out>/model``
    (a Hugging Face folder with ``clinical_vocab.json``). Returns the training summary."""
    from rotelab.clinical.medsio import read_meds
    from rotelab.clinical.train import train_ehr_model
    from rotelab.core.io import read_json
    from rotelab.report import build_report

    cfg = config.check()
    meds = read_meds(data)
    if not any(s.split == "train" for s in meds.subjects):
        raise RotelabError(f"{meds.root}: no subject of split 'train' in metadata/subject_splits.parquet; nothing to train on")
    inputs = {str(p.relative_to(meds.root)): p for p in meds.files}
    with open_run(out, "clinical train", asdict(cfg) | {"data": str(data)}, seed=cfg.seed, inputs=inputs, overwrite=overwrite, volatile=("data",)) as run:
        res = run.step("train", lambda: _trained(run, train_ehr_model(run, meds, cfg, progress=progress)), load=lambda: read_json(run.file("train.json")))
        build_report(run.path)
    return res


def _trained(run, res: dict) -> dict:
    run.write_json("train.json", res)
    return res


def audit(model: "LanguageModel | Path | str", data: Path | str, *, out: Path | str | None = None, config: AuditConfig = AuditConfig(),
          load: LoadOptions = LoadOptions(), overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """The memorization tests T1-T6 of ``config.tests`` on a MEDS dataset: members (train split)
    vs held-out patients, a per-patient verdict with its evidence.

    ``model``: a loaded :class:`~rotelab.core.models.LanguageModel` or a model folder (a
    ``clinical train`` run folder holds one in ``model/``); a recurrent model without a context
    in its config takes ``load.max_length`` (``--max-length``). Returns ``summary.json``'s
    content (small-cell suppressed; patient ids only with ``config.show_ids``); per-patient
    evidence stays in the run folder's ``evidence/``.
    """
    from rotelab.clinical.audit import run_audit
    from rotelab.clinical.cohort import prepare_cohort, start_id
    from rotelab.clinical.medsio import read_meds
    from rotelab.clinical.tokens import format_of_model
    from rotelab.core.api import as_model
    from rotelab.report import build_report

    cfg = config.check()
    load.validate()
    meds = read_meds(data, subgroup_columns=cfg.subgroups)
    lm = as_model(model, load)
    fmt, vocab_source = format_of_model(lm, meds)
    cohort = prepare_cohort(meds, fmt, cfg, bos_id=start_id(fmt, lm.tokenizer))
    held = int((~cohort.members).sum())
    if held == 0 and ("T4" in cfg.tests or "T1" in cfg.tests):
        raise RotelabError(f"{meds.root}: no subject of split 'held_out' in metadata/subject_splits.parquet; T1 and T4 compare members with held-out patients")
    longest = max((int(r) for r in cfg.patient_rungs if r.isdigit()), default=2)
    if cfg.needs_generation and longest + 1 + cfg.new_tokens > lm.max_length:
        raise RotelabError(f"--rungs up to {longest} codes + [BOS] + --new-tokens {cfg.new_tokens} exceed the model's context of {lm.max_length} tokens ({getattr(lm, 'max_length_source', '')})")
    inputs = {str(p.relative_to(meds.root)): p for p in meds.files}
    options = asdict(cfg) | {"model": str(model) if isinstance(model, (str, Path)) else f"{lm.name} (in memory)", "data": str(data)}
    with open_run(out, "clinical audit", options, seed=cfg.seed, inputs=inputs, models={"model": lm}, overwrite=overwrite, volatile=("batch_size", "jobs", "show_ids", "data", "model", "evidence_quantile")) as run:
        run.note("vocabulary", vocab_source)
        if meds.left_out:
            run.note("subjects_left_out", meds.left_out)
        result = run_audit(run, lm, cohort, cfg, progress=progress)
        build_report(run.path)
    return result
