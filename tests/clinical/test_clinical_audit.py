"""The audit on a micro model that memorized its canaries: each test's direction on planted
data, the privacy rules, resume and stale-run refusal, bad input before the run folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.clinical.conftest import MICRO_AUDIT, planted_kind
from rotelab.errors import RotelabError


def _evidence(run, name):
    return {k: np.asarray(v) for k, v in pq.read_table(run / "evidence" / name).to_pydict().items()}


def test_planted_memorization_is_found_and_rises_with_duplication(micro_audit, micro_cohort):
    run, summary = micro_audit
    pts = _evidence(run, "patients.parquet")
    kind = planted_kind(micro_cohort, pts["subject_id"])
    # T4: Min-K% rises with the number of copies; members above held-out
    mink = _evidence(run, "membership.parquet")["mink"]
    assert mink[kind == "canary16"].mean() > mink[kind == "canary4"].mean() > mink[kind == "canary1"].mean()
    assert mink[kind == "canary16"].mean() > mink[(kind == "heldbait") | (kind == "implied-held_out")].mean()
    # T1 at the headline rung: the x16 canaries' trajectories are reproduced far closer than held-out patients'
    lad = _evidence(run, "ladder.parquet")
    rows = lad["rung"] == MICRO_AUDIT.t1_rung
    d = lad["d_emd"][rows]
    assert np.nanmean(d[kind == "canary16"]) < 0.5 * np.nanmean(d[~pts["split"].astype(str).__eq__("train")])
    # T2 + verdicts: duplicated canaries' bait codes are memorization; a bait code never trained on is not found
    verdict = pts["verdict"]
    assert (verdict[kind == "canary16"] == "memorization").all()
    assert (verdict[kind == "heldbait"] == "no finding").all()
    f = _evidence(run, "findings.parquet")
    t2 = (f["test"] == "T2") & (f["verdict"] == "memorization")
    assert set(kind[f["patient"][t2].astype(int)]) >= {"canary16"}
    # T5 ran on the findings, T3 and T6 reported, small cells suppressed
    assert "T5" in summary and "T3" in summary and {r["subgroup"] for r in summary["T6"]} >= {"all", "rare", "age>85"}
    # fewer than 20 held-out patients: the AUC is a small cell, suppressed with its reason
    assert summary["T4"]["mink"]["auc"] is None and "small cell" in summary["T4"]["mink"]["auc_reason"]


def test_no_patient_id_outside_the_evidence_files(micro_audit):
    run, summary = micro_audit
    ids = {str(int(s)) for s in _evidence(run, "patients.parquet")["subject_id"]}
    text = json.dumps(summary) + (run / "report.html").read_text() + (run / "summary.json").read_text()
    # whole numbers only: an id's digits inside a float ("0.7410234") are not the id
    whole = lambda t: set(re.findall(r"(?<![\d.])\d+(?![\d]|\.\d)", t))  # noqa: E731
    assert whole('"subject": 10234, "auc": 0.7410234, "n": 12.') == {"10234", "12"}
    assert not ids & whole(text)
    assert (run / "cache").is_dir()  # the signal cache stays in the run folder


def test_resume_reuses_work_and_refuses_changed_options(micro_audit, micro_model, micro_cohort):
    from dataclasses import replace

    from rotelab.clinical.api import audit

    run, summary = micro_audit
    before = sorted(p.stat().st_mtime for p in (run / "generations").iterdir())
    again = audit(micro_model, micro_cohort, out=run, config=MICRO_AUDIT, progress=False)
    assert sorted(p.stat().st_mtime for p in (run / "generations").iterdir()) == before
    assert again["T4"] == summary["T4"]
    with pytest.raises(RotelabError, match="computed from other options"):
        audit(micro_model, micro_cohort, out=run, config=replace(MICRO_AUDIT, n_samples=3), progress=False)


def test_bad_input_is_refused_before_the_run_folder(micro_model, tmp_path):
    from dataclasses import replace

    from rotelab.clinical.api import audit

    with pytest.raises(RotelabError, match="not a MEDS dataset"):
        audit(micro_model, tmp_path, out=tmp_path / "run", config=MICRO_AUDIT, progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(RotelabError, match="--tests"):
        audit(micro_model, tmp_path, out=tmp_path / "run", config=replace(MICRO_AUDIT, tests=("T7",)), progress=False)
    assert not (tmp_path / "run").exists()


def test_audit_runs_on_a_tiny_random_mamba2(micro_cohort, tmp_path):
    """The paper's architecture: a Mamba2ForCausalLM folder (no context in its config: the
    tokenizer's model_max_length is used, or ``--max-length``, and stated in the manifest)."""
    from dataclasses import replace

    from rotelab.clinical.api import audit
    from rotelab.clinical.config import AuditConfig, train_preset
    from rotelab.clinical.medsio import read_meds
    from rotelab.clinical.tokens import TokenFormat, build_tokenizer
    from rotelab.clinical.train import new_ehr_model
    from rotelab.core.training import save_model_dir

    fmt = TokenFormat.fit(read_meds(micro_cohort))
    model = new_ehr_model(train_preset("tiny", arch="mamba2", n_layer=1, n_embd=32), len(fmt.vocab), fmt.ids)
    assert type(model).__name__ == "Mamba2ForCausalLM"
    save_model_dir(model, build_tokenizer(fmt.vocab, context=64), tmp_path / "m")
    fmt.save(tmp_path / "m")
    cfg = AuditConfig(tests=("T1", "T2", "T4"), rungs=("random", "static", "5"), t1_rung="5", n_samples=4, new_tokens=8, embeddings="model", max_patients=10)
    s = audit(tmp_path / "m", micro_cohort, out=tmp_path / "run", config=cfg, progress=False)
    assert {"T1", "T2", "T4", "verdicts"} <= set(s)
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())["models"]["model"]
    assert m["max_length"] == 64 and m["max_length_source"] == "tokenizer model_max_length"
    # --max-length takes precedence; the manifest states it
    from rotelab.core.models import LoadOptions

    audit(tmp_path / "m", micro_cohort, out=tmp_path / "run48", config=replace(cfg, tests=("T4",)), load=LoadOptions(max_length=48), progress=False)
    m = json.loads((tmp_path / "run48" / "manifest.json").read_text())["models"]["model"]
    assert m["max_length"] == 48 and m["max_length_source"] == "--max-length"


def test_command_prints_one_json_document_and_bad_input_exits_2(micro_model, tmp_path):
    from typer.testing import CliRunner

    from rotelab.cli import app

    r = CliRunner().invoke(app, ["clinical", "synth", "--preset", "tiny", "--patients", "30", "--out", str(tmp_path / "c"), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["data"] == str(tmp_path / "c")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "rotelab.cli", "clinical", "audit", "--data", str(tmp_path / "nothing"), "--model", str(micro_model),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'nothing'}: MEDS folder not found"
    assert not (tmp_path / "run").exists()


def _role_rates(run, cohort_dir):
    pts = _evidence(run, "patients.parquet")
    kind = planted_kind(cohort_dir, pts["subject_id"])
    held = np.isin(kind, ["held_out", "heldbait", "implied-held_out"])
    mem = pts["verdict"] == "memorization"
    return {k: float(mem[kind == k].mean()) for k in ("canary16", "canary4", "canary1")} | {"held_out": float(mem[held].mean())}, kind, pts


def test_memorization_verdicts_rise_with_duplication(micro_audit, micro_cohort):
    """Verdict rule 4 (individual evidence, calibrated on held-out patients): memorization rates
    are ordered x16 >= x4 >= x1 >= held-out, x16 clearly above held-out; the calibration is reported."""
    run, summary = micro_audit
    r, kind, pts = _role_rates(run, micro_cohort)
    assert r["canary16"] == 1.0 and r["held_out"] == 0.0
    assert r["canary16"] >= r["canary4"] >= r["canary1"] >= r["held_out"]
    rule = summary["verdict_rule"]
    assert rule["evidence_quantile"] == MICRO_AUDIT.evidence_quantile and {"T4 Min-K%", f"T1 d_EMD/baseline at rung {MICRO_AUDIT.t1_rung}"} <= set(rule["evidence"])
    # the stable duplicated records are memorization through their individual evidence (Min-K% above every held-out patient's)
    f = _evidence(run, "findings.parquet")
    stable_mem = [why for p, v, why in zip(f["patient"], f["verdict"], f["reason"]) if kind[int(p)] in ("canary16", "canary4") and "stable" in why]
    assert stable_mem and all("individual evidence: Min-K%" in why for why in stable_mem)
    mink = _evidence(run, "membership.parquet")["mink"]
    assert mink[kind == "canary4"].min() > rule["evidence"]["T4 Min-K%"]["threshold"]


def test_t5_perturbation_breaks_fragile_findings(micro_audit, micro_cohort):
    """T5: changing the age of a x16 canary's demographics-only prompt lowers its bait code's share
    across p_th (fragile: memorization of that record), and the perturbed prompts differ from the
    original in that one token."""
    from rotelab.clinical.cohort import prepare_cohort
    from rotelab.clinical.medsio import read_meds
    from rotelab.clinical.perturb import perturb
    from rotelab.clinical.tokens import TokenFormat

    run, summary = micro_audit
    pe = _evidence(run, "perturbation.parquet")
    kind = planted_kind(micro_cohort, _evidence(run, "patients.parquet")["subject_id"])
    sel = (kind[pe["patient"].astype(int)] == "canary16") & (pe["perturbation"] == "age")
    assert sel.any()
    assert (pe["share"][sel] < pe["original"][sel]).all() and pe["fragile"][sel].all() and (pe["share"][sel] <= MICRO_AUDIT.p_th).all()
    assert summary["T5"]["T2"]["fragile"]["hits"] != 0
    meds = read_meds(micro_cohort)
    fmt = TokenFormat.fit(meds)
    cohort = prepare_cohort(meds, fmt, MICRO_AUDIT, bos_id=0)
    prompt, _ = cohort.prompt(0, "static")
    for name, q in perturb(prompt, fmt, age_shift=MICRO_AUDIT.age_shift).items():
        diff = [(fmt.vocab[a], fmt.vocab[b]) for a, b in zip(prompt, q) if a != b]
        assert len(q) == len(prompt) and len(diff) == 1
        assert diff[0][0].startswith("AGE//" if name == "age" else diff[0][0].split("//")[0])


def test_t3_probe_separates_planted_codes_and_shuffled_labels_are_at_chance(micro_audit, micro_model, micro_cohort):
    """T3 on the memorized micro model: the infectious-code probe separates members above chance
    (interval above 0.5); the same probe on shuffled labels is at chance."""
    from rotelab.clinical.cohort import prepare_cohort, start_id
    from rotelab.clinical.medsio import read_meds
    from rotelab.clinical.probe import last_token_states, probe_target
    from rotelab.clinical.tokens import format_of_model
    from rotelab.core.api import as_model
    from rotelab.core.models import LoadOptions

    run, summary = micro_audit
    inf = summary["T3"]["infectious"][0]
    assert inf["auroc_ci"][0] > 0.5
    meds = read_meds(micro_cohort)
    lm = as_model(micro_model, LoadOptions())
    fmt, _ = format_of_model(lm, meds)
    cohort = prepare_cohort(meds, fmt, MICRO_AUDIT, bos_id=start_id(fmt, lm.tokenizer))
    idx = np.array([i for i in range(len(cohort)) if cohort.members[i] and cohort.prompt(i, MICRO_AUDIT.t1_rung) is not None])
    X = last_token_states(lm, [cohort.prompt(int(i), MICRO_AUDIT.t1_rung)[0] for i in idx])
    y = cohort.labels["infectious"][idx]
    m, _, _ = probe_target(X, y, fraction=0.5, grid="small", seed=0, jobs=1)
    assert m["auroc"] == pytest.approx(inf["auroc"]) and m["auroc_ci"][0] > 0.5
    assert probe_target(X, y, fraction=0.5, grid="small", seed=0, jobs=2)[0] == m  # the grid search in two processes: the same probe
    shuffled = [probe_target(X, np.random.default_rng(s).permutation(y), fraction=0.5, grid="small", seed=0)[0]["auroc"] for s in range(3)]
    assert 0.3 < np.mean(shuffled) < 0.7 and max(shuffled) < inf["auroc_ci"][0]


def test_t6_reports_rare_and_old_strata_separately_small_cell_suppressed(micro_audit, micro_cohort):
    """T6: the rare-code and age > 85 strata are their own rows; every count under 20 is '<20',
    every AUC and rate over a small cell is null with its reason (the micro cohort's strata are all small)."""
    run, summary = micro_audit
    rows = {r["subgroup"]: r for r in summary["T6"]}
    pts = _evidence(run, "patients.parquet")
    for name in ("rare", "age>85"):
        n = int(pts[f"group_{name}"].sum())
        assert 0 < n < 20
        r = rows[name]
        assert r["members"] in ("<20", 0) and r["held_out"] in ("<20", 0)
        assert r["T4 AUC (Min-K%)"]["auc"] is None and "small cell" in r["T4 AUC (Min-K%)"]["auc_reason"]
        assert r["T1 flagged (members)"]["rate"] is None
        assert all(v in (0, "<20") for k, v in r.items() if k.startswith("memorization") or k.startswith("generalization"))
    assert rows["all"]["members"] == int((pts["split"] == "train").sum())
