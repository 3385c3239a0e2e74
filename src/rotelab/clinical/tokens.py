"""The token format of EHR foundation models (EHRMamba2 / Odyssey style) and its vocabulary.

A subject's record becomes one token sequence::

    AGE//76  GENDER//F  DIAGNOSIS//ICD10//I10  LAB//HbA1c//4  TIME//2  MEDICATION//Metformin//PO ...

* ``AGE//<years>`` at the first timed event, from the ``MEDS_BIRTH`` event (absent without one);
* static facts (null time), e.g. ``GENDER//F``, in the shard's order;
* timed events in time order; between two distinct times a ``TIME//<gap>`` token (:data:`TIME_BINS`);
* a code with a numeric value becomes ``<code>//<bin>``, its quantile bin (``value_bins`` bins
  fitted on the train split, stored with the vocabulary); whitespace in a code becomes ``_``.

The vocabulary (special tokens, every token of the dataset, every age 0-110) and the value bins
are saved beside the model as ``clinical_vocab.json``, with a word-level tokenizer
(``tokenizers``) that prepends ``[BOS]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rotelab.clinical.medsio import MedsData, Subject
from rotelab.errors import RotelabError

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIALS = (PAD, BOS, EOS, UNK)
VOCAB_FILE = "clinical_vocab.json"
FORMAT_VERSION = 1
SEX_PREFIXES = ("GENDER//", "SEX//")
AGE = "AGE//"
_DAY_US = 86_400 * 1_000_000
# Upper bounds (days, exclusive) of the time-gap bins and their tokens.
TIME_BINS = ((1, "TIME//0"), (2, "TIME//1"), (10, "TIME//2"), (20, "TIME//10-20"), (40, "TIME//20-40"), (60, "TIME//40-60"), (float("inf"), "TIME//60+"))


def code_token(code: str) -> str:
    """A MEDS code as a token: whitespace becomes ``_`` (the tokenizer splits on whitespace).

    >>> code_token("MEDICATION//Insulin glargine//SC")
    'MEDICATION//Insulin_glargine//SC'
    """
    return "_".join(code.split())


def gap_token(days: float) -> str:
    """Examples:

    >>> gap_token(0.5), gap_token(3), gap_token(45), gap_token(400)
    ('TIME//0', 'TIME//2', 'TIME//40-60', 'TIME//60+')
    """
    return next(tok for hi, tok in TIME_BINS if days < hi)


@dataclass
class TokenFormat:
    """How records become tokens: value bins per numeric code, the vocabulary and its ids."""

    edges: dict[str, list[float]]  # numeric code token -> inner bin edges (value_bins - 1 values)
    vocab: list[str]  # id -> token
    value_bins: int = 5
    descriptions: dict[str, str] = field(default_factory=dict)  # token -> readable label (for sentence embeddings)

    @property
    def ids(self) -> dict[str, int]:
        if not hasattr(self, "_ids"):
            self._ids = {t: i for i, t in enumerate(self.vocab)}
        return self._ids

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, data: MedsData, *, value_bins: int = 5, fit_split: str = "train") -> "TokenFormat":
        """Value bins from ``fit_split`` (all subjects when it has none); the vocabulary from every subject."""
        fit_on = [s for s in data.subjects if s.split == fit_split] or data.subjects
        pool: dict[str, list[np.ndarray]] = {}
        for s in fit_on:
            has = ~np.isnan(s.values)
            for i in np.flatnonzero(has):
                pool.setdefault(code_token(s.codes[i]), []).append(s.values[i : i + 1])
        edges = {}
        for code, parts in pool.items():
            v = np.concatenate(parts)
            edges[code] = [float(x) for x in np.quantile(v, np.linspace(0, 1, value_bins + 1)[1:-1])] if value_bins > 1 else []
        fmt = cls(edges, list(SPECIALS), value_bins)
        seen: set[str] = set()
        for s in data.subjects:
            seen.update(fmt.encode(s, check=False))
        ages = [f"{AGE}{a}" for a in range(111)]
        fmt.vocab = list(SPECIALS) + sorted(seen | set(ages))
        fmt.descriptions = describe_tokens(fmt.vocab, data.descriptions, edges)
        return fmt

    # -- encoding ---------------------------------------------------------------------------
    def value_token(self, code: str, value: float) -> str:
        tok = code_token(code)
        if np.isnan(value) or tok not in self.edges:
            return tok
        return f"{tok}//{int(np.searchsorted(self.edges[tok], value, side='right'))}"

    def encode(self, s: Subject, *, check: bool = True, root: Path | None = None) -> list[str]:
        """The record of ``s`` as tokens; with ``check``, a token outside the vocabulary is one
        line naming the shard, the row and the field."""
        import meds

        out: list[str] = []
        birth = [t for t, c, st in zip(s.times, s.codes, s.static) if c == meds.birth_code and not st]
        timed = [i for i, (c, st) in enumerate(zip(s.codes, s.static)) if not st and c != meds.birth_code]
        if birth and timed:
            age = int((s.times[timed[0]] - birth[0]) // int(365.25 * _DAY_US))
            out.append(f"{AGE}{max(0, age)}")
        rows = [-1] * len(out)
        for i, (c, st) in enumerate(zip(s.codes, s.static)):
            if st and c != meds.birth_code:
                out.append(self.value_token(c, s.values[i]))
                rows.append(i)
        prev = None
        for i in timed:
            if prev is not None and s.times[i] != prev:
                out.append(gap_token((s.times[i] - prev) / _DAY_US))
                rows.append(-1)
            prev = s.times[i]
            out.append(self.value_token(s.codes[i], s.values[i]))
            rows.append(i)
        if check:
            ids = self.ids
            for tok, r in zip(out, rows):
                if tok not in ids:
                    where = f"{root / s.shard if root else s.shard}"
                    what = f"row {int(s.rows[r])}: field 'code' {s.codes[r]!r}" if r >= 0 else f"token {tok!r} (from field 'time')"
                    raise RotelabError(f"{where}: {what} is not in the model's vocabulary ({len(self.vocab)} tokens); audit data tokenised as the model was trained")
        return out

    def to_ids(self, tokens: Sequence[str]) -> list[int]:
        ids = self.ids
        return [ids[t] for t in tokens]

    def special_ids(self) -> set[int]:
        return {self.ids[t] for t in SPECIALS if t in self.ids}

    # -- storage ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": "rotelab-clinical-vocab", "version": FORMAT_VERSION, "value_bins": self.value_bins, "time_bins": [t for _, t in TIME_BINS],
                "edges": self.edges, "vocab": self.vocab, "descriptions": self.descriptions}

    @classmethod
    def from_json(cls, d: dict, where: str) -> "TokenFormat":
        if d.get("format") != "rotelab-clinical-vocab" or not isinstance(d.get("vocab"), list) or not isinstance(d.get("edges"), dict):
            raise RotelabError(f"{where}: not a rotelab clinical vocabulary (fields format, vocab, edges)")
        return cls({k: [float(x) for x in v] for k, v in d["edges"].items()}, [str(t) for t in d["vocab"]], int(d.get("value_bins", 5)), dict(d.get("descriptions", {})))

    def save(self, folder: Path) -> None:
        from rotelab.core.io import write_json

        write_json(Path(folder) / VOCAB_FILE, self.to_json())


def describe_tokens(vocab: Iterable[str], code_descriptions: dict[str, str], edges: dict[str, list[float]]) -> dict[str, str]:
    """Readable labels of tokens whose code has a MEDS description (value bins and ages spelled out).

    >>> describe_tokens(["LAB//CD4//0", "AGE//7"], {"LAB//CD4": "CD4 count"}, {"LAB//CD4": [200.0]})
    {'LAB//CD4//0': 'CD4 count, value bin 0', 'AGE//7': 'age 7 years'}
    """
    by_token = {code_token(c): d for c, d in code_descriptions.items()}
    out = {}
    for tok in vocab:
        head, _, tail = tok.rpartition("//")
        if tok in by_token:
            out[tok] = by_token[tok]
        elif head in edges and tail.isdigit() and head in by_token:
            out[tok] = f"{by_token[head]}, value bin {tail}"
        elif tok.startswith(AGE):
            out[tok] = f"age {tok[len(AGE):]} years"
        elif tok.startswith("TIME//"):
            out[tok] = f"time gap {tok[6:]} days"
    return out


def build_tokenizer(vocab: list[str], *, context: int):
    """A word-level tokenizer over ``vocab`` that prepends ``[BOS]`` (``PreTrainedTokenizerFast``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab.index(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, model_max_length=context)


def format_of_model(lm, data: MedsData, *, value_bins: int = 5) -> tuple[TokenFormat, str]:
    """The model's token format: its ``clinical_vocab.json``, or, for a model trained elsewhere,
    bins fitted on the data and the ids of its tokenizer's vocabulary. Returns (format, source)."""
    from rotelab.core.io import read_json

    src = getattr(lm, "source", None)
    if src is not None and (Path(src) / VOCAB_FILE).is_file():
        fmt = TokenFormat.from_json(read_json(Path(src) / VOCAB_FILE), str(Path(src) / VOCAB_FILE))
        source = VOCAB_FILE
    else:
        fitted = TokenFormat.fit(data, value_bins=value_bins)
        fmt = TokenFormat(fitted.edges, [], value_bins, fitted.descriptions)
        source = "fitted on the data; ids from the model's tokenizer"
    tok_vocab = lm.tokenizer.get_vocab()
    if source == VOCAB_FILE:
        wrong = next((t for t in fmt.vocab if tok_vocab.get(t) != fmt.ids[t]), None)
        if wrong is not None:
            raise RotelabError(f"{Path(src) / VOCAB_FILE}: token {wrong!r} has another id in the model's tokenizer; the vocabulary does not belong to this model")
    else:
        size = max(tok_vocab.values()) + 1
        fmt.vocab = [""] * size
        for t, i in tok_vocab.items():
            fmt.vocab[i] = t
        fmt._ids = dict(tok_vocab)  # type: ignore[attr-defined]
    return fmt, source
