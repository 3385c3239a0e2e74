"""``rotelab clinical``: synth, train, audit -- thin commands over :mod:`rotelab.clinical.api`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import BatchOpt, ModelOpts, RunOpts, SeedOpt, command, emit_run, group
from rotelab.clinical.config import TESTS, AuditConfig, TrainConfig
from rotelab.errors import RotelabError

app = group("clinical", help="EHR foundation models: can the model leak a patient? Memorization tests T1-T6 on MEDS data.")

_AUDIT, _TRAIN = AuditConfig(), TrainConfig()
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="MEDS dataset folder (data/*.parquet, metadata/subject_splits.parquet, optional metadata/codes.parquet).")]


def _csv(option: str, text: str) -> tuple[str, ...]:
    out = tuple(x.strip() for x in text.split(",") if x.strip())
    if not out:
        raise RotelabError(f"{option} names nothing; got {text!r}")
    return out


def _floats(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in _csv(option, text))
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated numbers; got {text!r}") from None


@command(app, "synth")
def synth(
    run: RunOpts,
    preset: Annotated[str, typer.Option("--preset", help="tiny (tests, seconds) | small (benchmark: 1,000 records).")] = "small",
    patients: Annotated[Optional[int], typer.Option("--patients", help="Distinct records (default: the preset's).")] = None,
    seed: SeedOpt = 0,
):
    """Write a synthetic MEDS cohort with planted ground truth (profiles, bait codes, canaries x1/x4/x16, rare and age > 85 patients)."""
    from rotelab.clinical import api
    from rotelab.clinical.config import synth_preset

    cfg = synth_preset(preset, seed=seed, **({"n_patients": patients} if patients is not None else {}))
    out = run.out_dir("clinical synth")
    emit_run(api.synth(out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "train")
def train(
    data: DataOpt,
    run: RunOpts,
    preset: Annotated[str, typer.Option("--preset", help="Model size and epochs: tiny | small (about 1M parameters).")] = "small",
    arch: Annotated[Optional[str], typer.Option("--arch", help="gpt2 | mamba2 (default gpt2).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Passes over the train split (default: the preset's).")] = None,
    context: Annotated[Optional[int], typer.Option("--context", help="Tokens per record; longer records are cut (default: the preset's).")] = None,
    seed: SeedOpt = 0,
):
    """Train a small causal LM over code tokens on the train split (a Hugging Face folder with its vocabulary)."""
    from rotelab.clinical import api
    from rotelab.clinical.config import train_preset

    changes = {k: v for k, v in (("arch", arch), ("epochs", epochs), ("context", context)) if v is not None}
    cfg = train_preset(preset, seed=seed, **changes)
    out = run.out_dir("clinical train")
    emit_run(api.train(data, out=out, config=cfg, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "audit")
def audit(
    data: DataOpt,
    model: ModelOpts,
    run: RunOpts,
    tests: Annotated[str, typer.Option("--tests", help=f"Comma list of {','.join(TESTS)}.")] = ",".join(_AUDIT.tests),
    rungs: Annotated[str, typer.Option("--rungs", help="The prompt ladder: random, static and numbers of codes.")] = ",".join(_AUDIT.rungs),
    samples: Annotated[int, typer.Option("--samples", help="Sampled continuations per prompt.")] = _AUDIT.n_samples,
    new_tokens: Annotated[int, typer.Option("--new-tokens", help="Code tokens per continuation.")] = _AUDIT.new_tokens,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = _AUDIT.temperature,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling: keep the smallest token set with this probability.")] = _AUDIT.top_p,
    headline_rung: Annotated[str, typer.Option("--headline-rung", help="The rung T3 embeds and T6 reports.")] = _AUDIT.t1_rung,
    p_th: Annotated[float, typer.Option("--p-th", help="T2/T5: a sensitive prediction is positive above this share.")] = _AUDIT.p_th,
    t1_quantile: Annotated[float, typer.Option("--t1-quantile", help="T1 flags members closer than this quantile of held-out patients.")] = _AUDIT.t1_quantile,
    perturb_samples: Annotated[int, typer.Option("--perturb-samples", help="T5: continuations per perturbed prompt.")] = _AUDIT.n_perturb,
    embeddings: Annotated[str, typer.Option("--embeddings", help="d_EMD code embeddings: model | descriptions | auto.")] = _AUDIT.embeddings,
    no_time_weighting: Annotated[bool, typer.Option("--no-time-weighting", help="d_EMD without the TIME-token weighting.")] = False,
    probe_grid: Annotated[str, typer.Option("--probe-grid", help="T3 grid: paper (81 configurations) | small.")] = _AUDIT.probe_grid,
    probe_fractions: Annotated[str, typer.Option("--probe-fractions", help="T3 train fractions.")] = ",".join(map(str, _AUDIT.probe_fractions)),
    support_lift: Annotated[float, typer.Option("--support-lift", help="A prompt code supports a sensitive code with at least this lift ...")] = _AUDIT.support_lift,
    support_min: Annotated[int, typer.Option("--support-min", help="... over at least this many training patients.")] = _AUDIT.support_min,
    evidence_quantile: Annotated[float, typer.Option("--evidence-quantile", help="Verdicts: a stable finding is memorization when the record's Min-K% (T4) or d_EMD/baseline (T1) is beyond this quantile of held-out patients'.")] = _AUDIT.evidence_quantile,
    sensitive: Annotated[Optional[str], typer.Option("--sensitive", help="Sensitive categories as ICD-10 prefixes: 'infectious=A50,B20;mental=F2,F3' (default: infectious, substance, mental).")] = None,
    subgroup: Annotated[Optional[list[str]], typer.Option("--subgroup", help="A data-shard column whose values are T6 subgroups (repeatable).")] = None,
    small_cell: Annotated[int, typer.Option("--small-cell", help="Counts below this are suppressed in tables, plots and output.")] = _AUDIT.small_cell,
    max_patients: Annotated[Optional[int], typer.Option("--max-patients", help="At most this many patients per split (seeded sample).")] = None,
    show_ids: Annotated[bool, typer.Option("--show-ids", help="Print the flagged patients' subject ids (always in the run folder's evidence/).")] = False,
    batch_size: BatchOpt = _AUDIT.batch_size,
    jobs: Annotated[int, typer.Option("--jobs", help="T3 grid-search processes (-1: all cores); the result does not depend on it.")] = _AUDIT.jobs,
    seed: SeedOpt = 0,
):
    """Audit an EHR foundation model: T1 trajectory, T2 sensitive attribute, T3 embedding probe, T4 membership, T5 perturbation, T6 subgroups."""
    from rotelab.clinical import api
    from rotelab.clinical.config import parse_sensitive

    cfg = replace(_AUDIT, tests=tuple(t.upper() for t in _csv("--tests", tests)), rungs=_csv("--rungs", rungs), n_samples=samples, new_tokens=new_tokens,
                  temperature=temperature, top_p=top_p, t1_rung=headline_rung, p_th=p_th, t1_quantile=t1_quantile, n_perturb=perturb_samples,
                  embeddings=embeddings, time_weighting=not no_time_weighting, probe_grid=probe_grid, probe_fractions=_floats("--probe-fractions", probe_fractions),
                  support_lift=support_lift, support_min=support_min, evidence_quantile=evidence_quantile, sensitive=parse_sensitive(sensitive) if sensitive else _AUDIT.sensitive,
                  subgroups=tuple(subgroup or ()), small_cell=small_cell, max_patients=max_patients, show_ids=show_ids, batch_size=batch_size, jobs=jobs, seed=seed)
    out = run.out_dir("clinical audit")
    emit_run(api.audit(model.path, data, out=out, config=cfg, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)
