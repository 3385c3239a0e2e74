"""A seeded synthetic MEDS cohort with planted ground truth (MIMIC-IV cannot be had offline).

Each patient follows one latent disease profile: diagnoses, labs (values shifted by the profile),
medications and procedures drawn from it and from a pool every patient shares, over 4-9 visits
with time gaps. Planted, and written to ``truth/planted.parquet`` (never read by the audit):

* **profile-implied sensitive codes** (generalization): HIV, opioid dependence and bipolar
  disorder follow their profile's supporting codes (CD4 low + antiretrovirals, buprenorphine +
  naloxone, lithium) in 85% of that profile's patients, always after the first visit;
* **bait sensitive codes** (memorization bait): a code of a category no profile implies
  (syphilis, hepatitis C, sedative or cannabis dependence, hypomania, PTSD), attached at random to
  single non-sensitive-profile patients: canaries, trained on with 1 / 4 / 16 identical copies
  (distinct subject ids), and held-out carriers the model never sees;
* **rare patients**: one code that occurs in no other record;
* **an age > 85 subgroup** (``p_old`` of patients aged 86-95);
* subject-level splits train / tuning / held_out (every canary copy in train).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rotelab.clinical.config import SynthConfig

DX, LAB, MED, PROC = "DIAGNOSIS//ICD10//", "LAB//", "MEDICATION//", "PROCEDURE//"


@dataclass(frozen=True)
class Profile:
    name: str
    share: float
    diagnoses: tuple[str, ...]
    labs: tuple[tuple[str, float], ...]  # (lab, shift of its value in standard deviations)
    meds: tuple[str, ...]
    procedures: tuple[str, ...]
    sensitive: str | None = None  # implied sensitive diagnosis (after the first visit)
    support: tuple[str, ...] = ()  # codes always in the first visit of that profile


PROFILES = (
    Profile("cardiometabolic", 0.30, ("I10", "E11.9", "I25.10", "E78.5"), (("HbA1c", 2.0), ("Glucose", 1.5), ("LDL", 1.5)), ("Metformin//PO", "Lisinopril//PO", "Atorvastatin//PO"), ("ECG",)),
    Profile("respiratory", 0.25, ("J44.9", "J45.909", "J18.9"), (("pO2", -1.5), ("WBC", 1.5)), ("Albuterol//INH", "Prednisone//PO", "Azithromycin//PO"), ("ChestXRay", "Spirometry")),
    Profile("hiv", 0.15, ("D84.9", "R50.9"), (("CD4", -2.5), ("ViralLoad", 2.5)), ("Bictegravir//PO", "TMP-SMX//PO"), ("ID_Consult",), sensitive="B20", support=(LAB + "CD4", MED + "Bictegravir//PO")),
    Profile("substance", 0.15, ("T40.2X1A", "K70.30"), (("UrineTox", 2.5), ("AST", 1.5)), ("Buprenorphine//SL", "Naloxone//IN"), ("Detox",), sensitive="F11.20", support=(MED + "Buprenorphine//SL", MED + "Naloxone//IN")),
    Profile("mental", 0.15, ("G47.00", "R45.1"), (("LithiumLevel", 1.5), ("TSH", 1.0)), ("Lithium//PO", "Quetiapine//PO"), ("PsychEval",), sensitive="F31.9", support=(MED + "Lithium//PO", LAB + "LithiumLevel")),
)
COMMON = {
    "diagnoses": ("R51", "R10.9", "S93.401A", "W19.XXXA", "R05", "M54.5", "K21.9", "N39.0"),
    "labs": ("Creatinine", "Hemoglobin", "Sodium", "Potassium", "Platelets"),
    "meds": ("Acetaminophen//PO", "Ibuprofen//PO", "Ondansetron//IV", "Heparin//SC"),
    "procedures": ("BloodDraw", "VitalSigns", "IV_Line"),
}
BAIT = ("A53.9", "B18.2", "F13.20", "F12.20", "F30.8", "F43.10")
DESCRIPTIONS = {
    "I10": "essential hypertension", "E11.9": "type 2 diabetes mellitus", "I25.10": "coronary artery disease", "E78.5": "hyperlipidemia",
    "J44.9": "chronic obstructive pulmonary disease", "J45.909": "asthma", "J18.9": "pneumonia", "D84.9": "immunodeficiency", "R50.9": "fever",
    "B20": "HIV disease", "T40.2X1A": "opioid poisoning", "K70.30": "alcoholic cirrhosis of liver", "F11.20": "opioid dependence",
    "G47.00": "insomnia", "R45.1": "restlessness and agitation", "F31.9": "bipolar disorder",
    "R51": "headache", "R10.9": "abdominal pain", "S93.401A": "ankle sprain", "W19.XXXA": "fall", "R05": "cough", "M54.5": "low back pain",
    "K21.9": "gastro-esophageal reflux disease", "N39.0": "urinary tract infection",
    "A53.9": "syphilis", "B18.2": "chronic viral hepatitis C", "F13.20": "sedative dependence", "F12.20": "cannabis dependence",
    "F30.8": "hypomanic episode", "F43.10": "post-traumatic stress disorder",
}
LAB_NAMES = {"HbA1c": "hemoglobin A1c", "Glucose": "glucose", "LDL": "LDL cholesterol", "pO2": "arterial oxygen pressure", "WBC": "white blood cell count",
             "CD4": "CD4 T-cell count", "ViralLoad": "HIV viral load", "UrineTox": "urine toxicology screen", "AST": "aspartate aminotransferase",
             "LithiumLevel": "serum lithium level", "TSH": "thyroid stimulating hormone", "Creatinine": "creatinine", "Hemoglobin": "hemoglobin",
             "Sodium": "sodium", "Potassium": "potassium", "Platelets": "platelet count"}
_EPOCH = dt.datetime(2150, 1, 1)  # MIMIC-style shifted dates


def _record(rng: np.random.Generator, cfg: SynthConfig, profile: Profile, age: int, rare_code: str | None, bait: str | None) -> tuple[list[tuple[float, str, float | None]], bool]:
    """(day, code, value) events of one patient (day 0 = first visit), and whether the profile's
    sensitive code was added."""
    n_visits = int(rng.integers(cfg.visits[0], cfg.visits[1] + 1))
    day, events = 0.0, []
    implied = profile.sensitive is not None and rng.random() < 0.85
    sens_visit = int(rng.integers(1, n_visits)) if implied else -1
    bait_visit = int(rng.integers(1, min(3, n_visits - 1) + 1)) if bait else -1
    rare_visit = int(rng.integers(0, n_visits)) if rare_code else -1
    for v in range(n_visits):
        if v:
            day += float(rng.choice([rng.uniform(0.2, 1), rng.uniform(1, 10), rng.uniform(10, 60), rng.uniform(60, 300)], p=[0.2, 0.3, 0.3, 0.2]))
        codes: list[tuple[str, float | None]] = []
        if v == 0:
            codes += [(c, _lab_value(rng, c[len(LAB):], profile)) if c.startswith(LAB) else (c, None) for c in profile.support]
        for _ in range(int(rng.integers(cfg.events[0], cfg.events[1] + 1))):
            own = rng.random() < 0.7
            kind = rng.choice(["dx", "lab", "med", "proc"], p=[0.3, 0.35, 0.2, 0.15])
            if kind == "dx":
                codes.append((DX + str(rng.choice(profile.diagnoses if own else COMMON["diagnoses"])), None))
            elif kind == "lab":
                lab = str(rng.choice([x for x, _ in profile.labs] if own else COMMON["labs"]))
                codes.append((LAB + lab, _lab_value(rng, lab, profile)))
            elif kind == "med":
                codes.append((MED + str(rng.choice(profile.meds if own else COMMON["meds"])), None))
            else:
                codes.append((PROC + str(rng.choice(profile.procedures if own else COMMON["procedures"])), None))
        if v == sens_visit:
            codes.insert(int(rng.integers(0, len(codes) + 1)), (DX + profile.sensitive, None))
        if v == bait_visit:
            codes.insert(int(rng.integers(0, len(codes) + 1)), (DX + bait, None))
        if v == rare_visit:
            codes.insert(int(rng.integers(0, len(codes) + 1)), (rare_code, None))
        # the events of a visit share its time (no TIME token between them)
        events += [(day, c, val) for c, val in codes]
    return events, implied


def _lab_value(rng: np.random.Generator, lab: str, profile: Profile) -> float:
    shift = dict(profile.labs).get(lab, 0.0)
    return float(np.round(100 + 15 * (rng.normal() + shift), 1))


def synthesize(cfg: SynthConfig) -> tuple[dict[str, list], dict[int, str], dict[str, str], dict[str, list]]:
    """(events, splits, descriptions, truth): MEDS event columns, subject splits, code
    descriptions, and the planted ground truth (one row per subject)."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_patients
    shares = np.array([p.share for p in PROFILES])
    split_names = np.array(["train", "tuning", "held_out"])
    base_split = rng.choice(split_names, size=n, p=list(cfg.splits))
    profiles = rng.choice(len(PROFILES), size=n, p=shares / shares.sum())
    plain = [i for i in range(n) if PROFILES[profiles[i]].sensitive is None]
    train_plain = [i for i in plain if base_split[i] == "train"]
    held_plain = [i for i in plain if base_split[i] == "held_out"]
    n_can = cfg.n_canaries * len(cfg.copies)
    canaries = list(rng.choice(train_plain, size=min(n_can, len(train_plain)), replace=False))
    held_bait = list(rng.choice(held_plain, size=min(cfg.n_bait_heldout, len(held_plain)), replace=False))
    rest = [i for i in range(n) if i not in set(canaries) | set(held_bait)]
    rare = set(int(i) for i in rng.choice(rest, size=min(cfg.n_rare, len(rest)), replace=False))
    copies = {int(c): cfg.copies[k // cfg.n_canaries] for k, c in enumerate(canaries)}
    bait_of = {int(i): str(rng.choice(BAIT)) for i in canaries + held_bait}

    events: dict[str, list] = {"subject_id": [], "time": [], "code": [], "numeric_value": []}
    truth: dict[str, list] = {k: [] for k in ("subject_id", "split", "profile", "copies", "canary_group", "bait_code", "implied_code", "rare", "age", "sex")}
    splits: dict[int, str] = {}
    next_id = 10_000
    rare_codes = {}
    for i in range(n):
        p = PROFILES[profiles[i]]
        age = int(rng.integers(86, 96)) if rng.random() < cfg.p_old else int(rng.integers(18, 86))
        sex = str(rng.choice(["F", "M"]))
        rare_code = None
        if i in rare:
            rare_code = f"{DX}Q87.{len(rare_codes)}"
            rare_codes[rare_code] = f"rare congenital malformation syndrome, type {len(rare_codes)}"
        rec, implied = _record(rng, cfg, p, age, rare_code, bait_of.get(i))
        start = _EPOCH + dt.timedelta(days=float(rng.uniform(0, 3650)))
        birth = start - dt.timedelta(days=365.25 * age + float(rng.uniform(1, 300)))
        for copy in range(copies.get(i, 1)):
            sid = next_id
            next_id += int(rng.integers(1, 50))
            splits[sid] = str(base_split[i])
            rows = [(birth, "MEDS_BIRTH", None), (None, f"GENDER//{sex}", None)] + [(start + dt.timedelta(days=d), c, v) for d, c, v in rec]
            for t, c, v in rows:
                events["subject_id"].append(sid)
                events["time"].append(t)
                events["code"].append(c)
                events["numeric_value"].append(v)
            for k, v in (("subject_id", sid), ("split", str(base_split[i])), ("profile", p.name), ("copies", copies.get(i, 1 if base_split[i] == "train" else 0)),
                         ("canary_group", i if i in copies else -1), ("bait_code", DX + bait_of[i] if i in bait_of else ""),
                         ("implied_code", DX + p.sensitive if implied else ""), ("rare", rare_code is not None), ("age", age), ("sex", sex)):
                truth[k].append(v)
    descriptions = {DX + c: d for c, d in DESCRIPTIONS.items()} | {LAB + k: v for k, v in LAB_NAMES.items()} | rare_codes
    for group in (p.meds for p in PROFILES):
        descriptions |= {MED + m: m.split("//")[0].replace("-", " ").lower() + " " + {"PO": "oral", "IV": "intravenous", "SC": "subcutaneous", "SL": "sublingual", "IN": "intranasal", "INH": "inhaled"}[m.split("//")[1]] for m in group}
    descriptions |= {MED + m: m.split("//")[0].lower() for m in COMMON["meds"]}
    descriptions |= {PROC + x: x.replace("_", " ").lower() for ps in [p.procedures for p in PROFILES] + [COMMON["procedures"]] for x in ps}
    descriptions |= {"GENDER//F": "female", "GENDER//M": "male", "MEDS_BIRTH": "birth"}
    return events, splits, descriptions, truth


def write_synthetic(root: Path, cfg: SynthConfig) -> dict:
    """Write the cohort as a MEDS root at ``root`` and its truth to ``truth/planted.parquet``."""
    from rotelab.clinical.medsio import write_meds
    from rotelab.core.runs import write_parquet

    events, splits, descriptions, truth = synthesize(cfg)
    write_meds(root, events, splits, descriptions, name=f"rotelab-synthetic-{cfg.preset}", version=f"seed{cfg.seed}")
    write_parquet(root / "truth" / "planted.parquet", truth)
    tr = np.array(truth["split"])
    cop = np.array(truth["copies"])
    return {"subjects": len(splits), "records": cfg.n_patients, "train": int((tr == "train").sum()), "tuning": int((tr == "tuning").sum()),
            "held_out": int((tr == "held_out").sum()), "events": len(events["code"]),
            "canary_subjects": {str(c): int((cop == c).sum()) for c in cfg.copies if c > 1} | {"1": int(((cop == 1) & (np.array(truth["canary_group"]) >= 0)).sum())}}
