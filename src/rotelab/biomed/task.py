"""A normalization task: frequency-balanced train / validation pairs per popularity bin, both
directions, and the prompt format every model (testbed or Hugging Face) is asked in.

Phase 1 of the paper's protocol: the same number of concepts from each popularity bin, then the
same share of each bin held out, so that memorization (training terms) and generalization
(validation terms) are measured on the same popularity mix. An ontology's arms share the split:
a validation gene is unseen under both its symbol and its GeneID.

A task folder holds ``task.json`` (ontology, arms, directions, bins, sources) and
``pairs.parquet`` (arm, key, term, target, synonyms, popularity, bin, split).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rotelab.biomed.sources import LEXICALIZED, ONTOLOGIES, Entry
from rotelab.errors import RotelabError

DIRECTIONS = ("forward", "reverse")
TAGS = {"hpo": "HPO", "go": "GO", "symbol": "SYM", "geneid": "GID", "arbitrary": "A", "derived": "D"}
END = "\n"  # ends every answer; a prediction is the continuation up to it


@dataclass(frozen=True)
class TaskConfig:
    """What ``rotelab biomed build-task`` samples."""

    n_per_bin: int = 100  # concepts sampled from each popularity bin
    n_bins: int = 4  # popularity bins (quantiles of the ontology's popularity)
    val_share: float = 1 / 3  # share of each bin held out for validation
    directions: str = "both"  # forward (term -> id) | reverse (id -> term) | both
    max_chars: int = 80  # concepts with a longer name or identifier are left out (character-level contexts)
    seed: int = 0

    def validate(self) -> None:
        if self.n_per_bin < 2:
            raise RotelabError(f"--n-per-bin must be >= 2; got {self.n_per_bin}")
        if not 1 <= self.n_bins <= 20:
            raise RotelabError(f"--bins must be in [1, 20]; got {self.n_bins}")
        if not 0 < self.val_share < 1:
            raise RotelabError(f"--val-share must be in (0, 1); got {self.val_share}")
        if self.max_chars < 4:
            raise RotelabError(f"--max-chars must be >= 4; got {self.max_chars}")
        directions_of(self.directions)


def directions_of(spec: str) -> tuple[str, ...]:
    if spec == "both":
        return DIRECTIONS
    if spec in DIRECTIONS:
        return (spec,)
    raise RotelabError(f"--directions must be forward, reverse or both; got '{spec}'")


# -- popularity bins and the balanced split ------------------------------------------------------
def bin_edges(popularity: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges of up to ``n_bins`` quantile bins (ties stay in one bin, so there may be fewer).

    >>> bin_edges(np.array([0, 0, 0, 0, 1, 2, 5, 9]), 4).tolist()
    [0.5, 2.75]
    """
    qs = np.quantile(popularity, np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = np.unique(qs)
    return edges[edges > popularity.min()]


def assign_bins(popularity: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value: bin b holds edges[b-1] <= p < edges[b].

    >>> assign_bins(np.array([0, 1, 3, 9]), np.array([1.0, 3.5])).tolist()
    [0, 1, 1, 2]
    """
    return np.searchsorted(edges, popularity, side="right")


def balanced_sample(keys: list[str], bins: np.ndarray, cfg: TaskConfig) -> dict[str, str]:
    """key -> "train" | "validation": ``n_per_bin`` keys per bin (all of a smaller bin), of which
    round(val_share x n) go to validation in every bin."""
    rng = random.Random(cfg.seed)
    split: dict[str, str] = {}
    for b in sorted(set(bins.tolist())):
        members = [k for k, x in zip(keys, bins) if x == b]
        pick = rng.sample(members, min(cfg.n_per_bin, len(members)))
        n_val = round(cfg.val_share * len(pick))
        for i, k in enumerate(pick):
            split[k] = "validation" if i < n_val else "train"
    return split


def build_pairs(arms: dict[str, list[Entry]], cfg: TaskConfig) -> tuple[dict[str, list], dict[str, Any]]:
    """The task's table (one row per arm and sampled concept) and its bins.

    Popularity is a property of the concept (the same in every arm); bins are quantiles of the
    whole ontology's popularity, then each bin is sampled and split (:func:`balanced_sample`).
    """
    short = {e.key for a in arms.values() for e in a if len(e.term) > cfg.max_chars or len(e.target) > cfg.max_chars}
    arms = {a: [e for e in es if e.key not in short] for a, es in arms.items()}
    first = next(iter(arms.values()))
    if len(first) < 2:
        raise RotelabError(f"fewer than 2 concepts with names of at most --max-chars {cfg.max_chars} characters")
    keys = [e.key for e in first]
    if len(set(keys)) < len(keys):
        raise RotelabError("duplicate concept keys in the ontology")
    pop = np.array([e.popularity for e in first], dtype=float)
    edges = bin_edges(pop, cfg.n_bins)
    bins = assign_bins(pop, edges)
    split = balanced_sample(keys, bins, cfg)
    bin_of = dict(zip(keys, bins.tolist()))
    cols: dict[str, list] = {c: [] for c in ("arm", "key", "term", "target", "synonyms", "popularity", "bin", "split")}
    for arm, entries in arms.items():
        for e in entries:
            if e.key not in split:
                continue
            for c, v in zip(cols, (arm, e.key, e.term, e.target, list(e.synonyms), e.popularity, bin_of[e.key], split[e.key])):
                cols[c].append(v)
    ranges = [[float(pop[bins == b].min()), float(pop[bins == b].max())] for b in range(len(edges) + 1)]
    return cols, {"edges": edges.tolist(), "ranges": ranges, "population": [int((bins == b).sum()) for b in range(len(edges) + 1)], "left_out_long": len(short)}


# -- prompts -------------------------------------------------------------------------------------
def prompt(arm: str, direction: str, source: str) -> str:
    """What a model is asked: the arm's tag, ``>`` (term -> id) or ``<`` (id -> term), the source, ``=``.

    >>> prompt("hpo", "forward", "Seizure"), prompt("hpo", "reverse", "HP:0001250")
    ('HPO> Seizure =', 'HPO< HP:0001250 =')
    """
    return f"{TAGS[arm]}{'>' if direction == 'forward' else '<'} {source} ="


def completion(answer: str) -> str:
    """The answer as the model should continue the prompt."""
    return f" {answer}{END}"


def answer_of(text: str) -> str:
    """A model's answer: its continuation up to the first line end, stripped.

    >>> answer_of(" HP:0001250\\nHPO> x")
    'HP:0001250'
    """
    return text.split(END, 1)[0].strip()


# -- the task folder -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One question: an arm, a direction and a concept; ``gold`` is the answer, ``accepted`` the
    answers a synonym-aware match also takes."""

    arm: str
    direction: str
    key: str
    split: str
    popularity: float
    bin: int
    source: str
    gold: str
    accepted: tuple[str, ...]

    @property
    def prompt(self) -> str:
        return prompt(self.arm, self.direction, self.source)

    @property
    def text(self) -> str:
        """The whole pair as one training text."""
        return self.prompt + completion(self.gold)

    @property
    def group(self) -> str:
        return f"{self.arm}/{self.direction}"


@dataclass
class Task:
    path: Path
    meta: dict[str, Any]
    pairs: dict[str, list]

    @property
    def arms(self) -> list[str]:
        return list(self.meta["arms"])

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self.meta["directions"])

    def items(self, split: str | None = None) -> list[Item]:
        """Every (arm, direction, concept) question, optionally of one split."""
        p, out = self.pairs, []
        for i in range(len(p["key"])):
            if split is not None and p["split"][i] != split:
                continue
            term, target, syn = p["term"][i], p["target"][i], tuple(p["synonyms"][i])
            for d in self.directions:
                src, gold, acc = (term, target, (target,)) if d == "forward" else (target, term, (term, *syn))
                items_ = Item(p["arm"][i], d, p["key"][i], p["split"][i], float(p["popularity"][i]), int(p["bin"][i]), src, gold, acc)
                out.append(items_)
        return out

    def texts(self) -> list[str]:
        """Every string of the task (terms, identifiers, synonyms, prompts): a tokenizer's alphabet."""
        return [it.text for it in self.items()] + [s for syn in self.pairs["synonyms"] for s in syn]


def write_task(run, ontology: str, arms: dict[str, list[Entry]], cfg: TaskConfig, provenance: dict) -> dict[str, Any]:
    """Write ``pairs.parquet`` and ``task.json`` into the open run folder; returns the summary."""
    cols, bins = build_pairs(arms, cfg)
    run.write_parquet("pairs.parquet", cols)
    splits = np.array(cols["split"])
    meta = {
        "ontology": ontology,
        "arms": {a: {"tag": TAGS[a], "lexicalized": LEXICALIZED[a]} for a in arms},
        "directions": list(directions_of(cfg.directions)),
        "bins": bins,
        "config": asdict(cfg),
        "source": provenance,
        "counts": {s: int((splits == s).sum() // max(1, len(arms))) for s in ("train", "validation")},
        "counts_per_bin": {str(b): {s: int(((np.array(cols["bin"]) == b) & (splits == s)).sum() // max(1, len(arms))) for s in ("train", "validation")}
                           for b in sorted(set(cols["bin"]))},
    }
    run.write_json("task.json", meta)
    return meta


def read_task(path: Path | str) -> Task:
    """A task folder written by ``rotelab biomed build-task``; refused in one line otherwise."""
    from rotelab.core.io import read_json
    from rotelab.core.runs import read_parquet

    p = Path(path)
    if not (p / "task.json").is_file() or not (p / "pairs.parquet").is_file():
        raise RotelabError(f"{p}: not a biomed task folder (no task.json and pairs.parquet; build one with `rotelab biomed build-task`)")
    meta = read_json(p / "task.json")
    if meta.get("ontology") not in ONTOLOGIES or not meta.get("arms"):
        raise RotelabError(f"{p / 'task.json'}: field 'ontology' must be one of {', '.join(ONTOLOGIES)} with 'arms'")
    cols = read_parquet(p / "pairs.parquet")
    missing = {"arm", "key", "term", "target", "synonyms", "popularity", "bin", "split"} - set(cols)
    if missing:
        raise RotelabError(f"{p / 'pairs.parquet'}: missing columns {sorted(missing)}")
    pairs = {k: [list(x) for x in v] if k == "synonyms" else v.tolist() for k, v in cols.items()}
    unknown = set(pairs["arm"]) - set(TAGS)
    if unknown:
        raise RotelabError(f"{p / 'pairs.parquet'}: unknown arm {sorted(unknown)[0]!r}")
    return Task(p, meta, pairs)
