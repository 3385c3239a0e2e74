"""The audited cohort: members (train split) and held-out patients as token ids, their sensitive
labels, their subgroups, and the prompt of every rung of the ladder.

Prompts (Tonekaboni et al. 2025, section 5): ``random`` is ``[BOS]`` alone (no patient
information); ``static`` is ``[BOS]`` and the leading demographic tokens (age, sex); rung ``N`` is
``[BOS]`` and the first N tokens of the record **with its sensitive codes removed** (T2's
protocol). The true trajectory a rung is compared with (T1) is the record after the prompt's
last token, sensitive codes included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from rotelab.clinical.config import RANDOM, STATIC, AuditConfig
from rotelab.clinical.medsio import MedsData
from rotelab.clinical.tokens import AGE, BOS, EOS, PAD, SEX_PREFIXES, TokenFormat
from rotelab.errors import RotelabError

MEMBER, HELD_OUT = "train", "held_out"
_DX_HEADS = ("DIAGNOSIS", "CONDITION", "DX")


def sensitive_category(token: str, categories: dict[str, tuple[str, ...]]) -> str | None:
    """The sensitive category of a diagnosis token, or None.

    A diagnosis token starts with DIAGNOSIS, CONDITION or DX, or mentions ICD; its code is the
    part after the last ``//`` (and after a last ``/`` or ``:``), dots removed, matched by prefix.

    >>> cats = {"infectious": ("B20",), "mental": ("F3",)}
    >>> sensitive_category("DIAGNOSIS//ICD10//B20", cats), sensitive_category("DIAGNOSIS//ICD//10//F319", cats)
    ('infectious', 'mental')
    >>> sensitive_category("MEDICATION//F30//PO", cats) is None
    True
    """
    up = token.upper()
    if not (up.startswith(_DX_HEADS) or "ICD" in up):
        return None
    code = up.rpartition("//")[2].rpartition("/")[2].rpartition(":")[2].replace(".", "")
    return next((c for c, prefixes in categories.items() if code.startswith(prefixes)), None)


@dataclass
class Cohort:
    """Audited patients, indexed 0..P-1 (evidence files map the index to the subject id)."""

    subject_ids: np.ndarray  # (P,) int64
    split: np.ndarray  # (P,) str: train | held_out
    tokens: list[list[str]]
    ids: list[list[int]]
    age: np.ndarray  # (P,) int, -1 without an age token
    fmt: TokenFormat
    start: list[int]  # ids every prompt starts with ([BOS])
    sensitive: dict[str, np.ndarray]  # category -> (V,) bool over token ids
    labels: dict[str, np.ndarray]  # category and "any" -> (P,) bool: the record holds one
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # subgroup -> (P,) bool
    shards: list[str] = field(default_factory=list)  # (P,) shard of each patient (for messages)

    @property
    def members(self) -> np.ndarray:
        return self.split == MEMBER

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def sensitive_any(self) -> np.ndarray:
        return np.any(np.stack(list(self.sensitive.values())), axis=0)

    def text(self, i: int) -> str:
        """The record as the model's tokenizer reads it (T4's signals)."""
        return " ".join(self.tokens[i] + [EOS])

    def prompt(self, i: int, rung: str) -> tuple[list[int], list[int]] | None:
        """(prompt ids, true continuation ids) of patient i at ``rung``; None when the record has
        nothing after the prompt."""
        toks, ids = self.tokens[i], self.ids[i]
        if rung == RANDOM:
            return list(self.start), ids
        if rung == STATIC:
            n = 0
            while n < len(toks) and (toks[n].startswith(AGE) or toks[n].startswith(SEX_PREFIXES)):
                n += 1
            return (list(self.start) + ids[:n], ids[n:]) if n < len(ids) else None
        keep = [k for k, t in enumerate(ids) if not self.sensitive_any[t]]
        N = int(rung)
        if len(keep) <= N:
            return None
        last = keep[N - 1]
        return list(self.start) + [ids[k] for k in keep[:N]], ids[last + 1 :]


def prepare_cohort(data: MedsData, fmt: TokenFormat, cfg: AuditConfig, *, bos_id: int) -> Cohort:
    """Encode the audited subjects (refusing, in one line, a token outside the vocabulary), label
    them, and find their subgroups; everything that can be refused is refused here."""
    rng = np.random.default_rng(cfg.seed)
    chosen = []
    for split in (MEMBER, HELD_OUT):
        idx = [k for k, s in enumerate(data.subjects) if s.split == split]
        if cfg.max_patients is not None and len(idx) > cfg.max_patients:
            idx = sorted(rng.choice(idx, size=cfg.max_patients, replace=False).tolist())
        chosen += idx
    subjects = [data.subjects[k] for k in chosen]
    n_mem = sum(s.split == MEMBER for s in subjects)
    if n_mem == 0:
        raise RotelabError(f"{data.root}: no subject of split 'train' in metadata/subject_splits.parquet (the members of the audit)")
    tokens = [fmt.encode(s, root=data.root) for s in subjects]
    for s, t in zip(subjects, tokens):
        if not t:
            raise RotelabError(f"{data.root / s.shard}: row {int(s.rows[0])}: field 'code': the subject has no event the token format keeps (only MEDS_BIRTH)")
    V = len(fmt.vocab)
    sensitive = {c: np.zeros(V, dtype=bool) for c in cfg.sensitive}
    for t, i in fmt.ids.items():
        c = sensitive_category(t, cfg.sensitive)
        if c is not None:
            sensitive[c][i] = True
    ids = [fmt.to_ids(t) for t in tokens]
    labels = {c: np.array([bool(m[x].any()) for x in ids]) for c, m in sensitive.items()}
    labels["any"] = np.any(np.stack(list(labels.values())), axis=0)
    age = np.array([next((int(t[len(AGE):]) for t in toks if t.startswith(AGE) and t[len(AGE):].isdigit()), -1) for toks in tokens])
    cohort = Cohort(np.array([s.subject_id for s in subjects], dtype=np.int64), np.array([s.split for s in subjects]), tokens, ids, age, fmt, [bos_id],
                    sensitive, labels, shards=[s.shard for s in subjects])
    cohort.groups = subgroups(data, subjects, cohort, cfg.subgroups)
    return cohort


def subgroups(data: MedsData, subjects: Sequence, cohort: Cohort, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """T6's vulnerable subgroups: ``rare`` (a code that occurs in no other subject of the
    dataset), ``age>85``, and ``<column>=<value>`` for each named column."""
    seen: dict[str, int] = {}
    for s in data.subjects:
        for c in set(s.codes):
            seen[c] = seen.get(c, 0) + 1
    out = {"rare": np.array([any(seen[c] == 1 for c in set(s.codes)) for s in subjects]), "age>85": cohort.age > 85}
    for col in columns:
        vals = np.array([str(s.extra.get(col)) for s in subjects])
        for v in sorted(set(vals)):
            out[f"{col}={v}"] = vals == v
    return out


def start_id(fmt: TokenFormat, tokenizer) -> int:
    """The token every prompt starts with: ``[BOS]``, else the tokenizer's BOS or ``[CLS]``."""
    for t in (BOS, getattr(tokenizer, "bos_token", None), "[CLS]"):
        if t and t in fmt.ids:
            return fmt.ids[t]
    raise RotelabError("the model's vocabulary has no [BOS], bos token or [CLS] to start a prompt with")


def stop_ids(fmt: TokenFormat) -> set[int]:
    """Tokens that end a generated trajectory (EOS, padding)."""
    return {fmt.ids[t] for t in (EOS, PAD) if t in fmt.ids}
