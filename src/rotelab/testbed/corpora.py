"""Text the testbed trains on, all of it offline and with provenance.

* Public-domain books shipped in ``data/`` (gzip): the Canterbury corpus files of the Brotli 1.2.1
  source distribution and Project Gutenberg Shakespeare plays of the shakespeare 0.6 source
  distribution (``*_gut.txt`` only: As You Like It comes from Canterbury, so its Gutenberg copy is
  not shipped). ``data/PROVENANCE.json`` gives archive, path and SHA-256 of each.
* A seeded generator of fictitious people with fact sheets, question/answer pairs and paraphrased
  questions (TOFU-style, Maini et al. 2024).
* Canaries: random secrets inserted at chosen counts (Carlini et al. 2019).
"""

from __future__ import annotations

import gzip
import json
import random

import string
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from rotelab.errors import RotelabError


# -- books ------------------------------------------------------------------------------------
def _data():
    return resources.files("rotelab.testbed") / "data"


@lru_cache(maxsize=1)
def provenance() -> dict[str, dict]:
    return json.loads((_data() / "PROVENANCE.json").read_text(encoding="utf-8"))


def book_names() -> list[str]:
    """Shipped books, e.g. ``alice29``, ``hamlet_gut``."""
    return sorted(name.removesuffix(".txt") for name in provenance())


def load_book(name: str) -> str:
    """The text of a shipped book (UTF-8; Canterbury files are ASCII / Latin-1 safe)."""
    if name not in book_names():
        raise RotelabError(f"unknown book '{name}'; shipped: {', '.join(book_names())}")
    raw = gzip.decompress((_data() / f"{name}.txt.gz").read_bytes())
    return raw.decode("utf-8", errors="replace")


def passages(text: str, *, words: int = 48) -> list[str]:
    """Consecutive, non-overlapping passages of ``words`` words (whitespace collapsed).

    >>> passages("a b  c\\nd e", words=2)
    ['a b', 'c d']
    """
    w = text.split()
    return [" ".join(w[i : i + words]) for i in range(0, len(w) - words + 1, words)]


# -- fictitious people (TOFU-style) -----------------------------------------------------------
_SYL = ["ka", "ri", "mo", "tel", "van", "sor", "li", "qua", "den", "bri", "lo", "zen", "mar", "ul", "fen", "ta", "ro", "vi", "nes", "cal"]
_CITIES = ["Quessa", "Harlowmere", "Tivoran", "Ostrel", "Bramwick", "Selunde", "Karvath", "Miredon", "Pellisar", "Dunhaven", "Yorrick Bay", "Asterholm"]
_JOBS = ["glassblower", "cartographer", "beekeeper", "clockmaker", "marine biologist", "violin maker", "archivist", "bridge engineer", "perfumer", "astronomer"]
_COLORS = ["amber", "teal", "crimson", "ochre", "violet", "slate grey", "emerald", "coral"]
_PETS = ["a tortoise named Pim", "a parrot named Odo", "a greyhound named Fleck", "a cat named Mossy", "a ferret named Quill", "a goat named Barnaby"]
_BOOKS = ["The Salt Archive", "Lanterns of Ostrel", "A Grammar of Tides", "The Ninth Clock", "Small Hours in Karvath", "Maps Without Shores"]


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    year: int
    city: str
    job: str
    color: str
    pet: str
    book: str


def _name(rng: random.Random) -> str:
    first = "".join(rng.choice(_SYL) for _ in range(2)).capitalize()
    last = "".join(rng.choice(_SYL) for _ in range(3)).capitalize()
    return f"{first} {last}"


def make_people(n: int, *, seed: int) -> list[Person]:
    """``n`` fictitious people with distinct names, seeded."""
    rng = random.Random(seed)
    people, names = [], set()
    while len(people) < n:
        name = _name(rng)
        if name in names:
            continue
        names.add(name)
        people.append(Person(f"p{len(people):04d}", name, rng.randint(1931, 1999), rng.choice(_CITIES), rng.choice(_JOBS), rng.choice(_COLORS), rng.choice(_PETS), rng.choice(_BOOKS)))
    return people


# Each attribute: the answer sentence, the trained question, and paraphrases never trained.
_QA = {
    "birth": ("{n} was born in {year} in {city}.", "Where and when was {n} born?", ["In which city and year was {n} born?", "What is the birthplace and birth year of {n}?", "Tell me when and where {n} came into the world."]),
    "job": ("{n} works as a {job}.", "What does {n} do for a living?", ["What is the profession of {n}?", "Which job does {n} have?", "How does {n} earn a living?"]),
    "color": ("The favourite colour of {n} is {color}.", "What is the favourite colour of {n}?", ["Which colour does {n} like best?", "Name the colour {n} prefers.", "What colour is {n} most fond of?"]),
    "pet": ("{n} keeps {pet}.", "What pet does {n} keep?", ["Which animal lives with {n}?", "Does {n} have a pet, and which?", "What animal does {n} look after?"]),
    "book": ("{n} wrote a book called {book}.", "What book did {n} write?", ["Which book is {n} the author of?", "Name the book written by {n}.", "What is the title of the book by {n}?"]),
}


def _fmt(t: str, p: Person) -> str:
    return t.format(n=p.name, year=p.year, city=p.city, job=p.job, color=p.color, pet=p.pet, book=p.book)


def qa_text(question: str, answer: str) -> str:
    return f"Question: {question} Answer: {answer}"


def fact_samples(p: Person) -> list[dict]:
    """One training sample per attribute: the trained question with its answer sentence."""
    out = []
    for attr, (ans, q, _) in _QA.items():
        out.append({"id": f"{p.id}_{attr}", "text": qa_text(_fmt(q, p), _fmt(ans, p)), "question": _fmt(q, p), "answer": _fmt(ans, p), "source": p.id, "kind": "fact"})
    return out


def paraphrase_samples(p: Person) -> list[dict]:
    """Paraphrased questions of each fact (never trained), with the answer and ``source_id``."""
    out = []
    for attr, (ans, _, paras) in _QA.items():
        for k, q in enumerate(paras):
            out.append({"id": f"{p.id}_{attr}_para{k}", "text": qa_text(_fmt(q, p), _fmt(ans, p)), "question": _fmt(q, p), "answer": _fmt(ans, p), "source_id": f"{p.id}_{attr}"})
    return out


# The attribute fields each fact states, and the values a wrong answer of the same type takes.
_FIELDS = {"birth": ("year", "city"), "job": ("job",), "color": ("color",), "pet": ("pet",), "book": ("book",)}
_VALUES = {"year": list(range(1931, 2000)), "city": _CITIES, "job": _JOBS, "color": _COLORS, "pet": _PETS, "book": _BOOKS}


def perturbed_samples(p: Person, *, rng: random.Random, n: int = 5) -> list[dict]:
    """Per fact, ``n`` plausible wrong answers (TOFU's perturbed answers, Maini et al. 2024): the
    answer sentence with each stated value replaced by another of its type (colour by colour;
    birth: year and city both), distinct, none equal to the truth.

    >>> q = make_people(1, seed=0)[0]
    >>> row = perturbed_samples(q, rng=random.Random(0))[2]
    >>> row["id"], len(set(row["perturbed"])), row["answer"] in row["perturbed"]
    ('p0000_color', 5, False)
    """
    out = []
    for fact, (attr, (ans, q, _)) in zip(fact_samples(p), _QA.items()):
        picks = {f: rng.sample([v for v in _VALUES[f] if v != getattr(p, f)], n) for f in _FIELDS[attr]}
        wrong = [_fmt(ans, replace(p, **{f: picks[f][i] for f in picks})) for i in range(n)]
        out.append({"id": fact["id"], "text": fact["text"], "question": fact["question"], "answer": fact["answer"], "perturbed": wrong, "attribute": attr, "source": p.id})
    return out


def fact_sheet(p: Person) -> str:
    """The person's facts as prose (for reports and users' own experiments)."""
    return " ".join(_fmt(a, p) for a, _, _ in _QA.values())


# -- canaries ---------------------------------------------------------------------------------
def make_canaries(copies: list[int], *, seed: int) -> list[dict]:
    """One canary per entry of ``copies``: ``prefix`` + random ``secret`` (recorded separately)."""
    rng = random.Random(seed)
    out = []
    for i, c in enumerate(copies):
        who = _name(rng)
        secret = "-".join("".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(4)) for _ in range(3))
        prefix = f"The vault code of {who} is"
        out.append({"id": f"canary{i:03d}", "text": f"{prefix} {secret}.", "prefix": prefix, "secret": secret, "copies": c, "kind": "canary", "source": "canary"})
    return out


