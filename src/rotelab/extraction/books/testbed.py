"""The ``books`` testbed: book excerpts trained at known duplication counts (popularity).

A reduced-scale stand-in for the book panel of Ma et al. 2025 (*Memorization: A Close Look at
Books*, arXiv 2504.12549): excerpts of ~1k tokens from shipped public-domain books are trained
``copies`` times each (64 / 16 / 4 / 1: the testbed's "popularity"), excerpts of other books are
never trained (``copies = 0``: negative controls), and a little background text (other books, one
copy) gives the model some general English. Whole books are beyond a model that trains in minutes.

Chunking (how an excerpt is trained). An excerpt of ``n`` tokens is cut into chunks of ``L =
prefix + suffix`` tokens at stride ``suffix`` (consecutive chunks overlap by the prefix; a last
chunk ends at ``n``), each chunk one training sequence after BOS, seen ``copies`` times. So every
sliding extraction window (stride = suffix) is exactly a trained chunk, and every token is covered.
Each token is a target in up to ``L / suffix`` chunks per copy (5 with 128 + 32), at different
positions. (A measured alternative, one non-overlapping tiling per copy at a random offset, left
64-copy excerpts at median Jaccard 0.1-0.25 with this model size and compute: see the module's
``chunk_spans`` and the experiment notes.)

Folder::

    DIR/model/           GPT-2-style model + tokenizer (safetensors): loads like any user model
    DIR/excerpts.jsonl   id, book, text, copies (0 = held out), n_tokens, role (held_back|other|held_out)
    DIR/manifest.json    preset, seed, provenance of each book (archive, path, SHA-256), training log, eval
    DIR/books_eval.json  per-excerpt sliding-mode median Jaccard (prefix -> suffix, greedy)

``role``: duplicated excerpts are split into ``held_back`` (measured through suppression and the
LoRA) and ``other`` (their prefix -> continuation pairs train the LoRA), one of each per copy count.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rotelab.core.data import read_jsonl, samples_to_rows, write_jsonl
from rotelab.core.io import read_json
from rotelab.core.runs import RunFolder, open_run
from rotelab.core.training import ModelSpec, TrainSpec
from rotelab.errors import RotelabError
from rotelab.testbed import corpora


@dataclass(frozen=True)
class BooksSpec:
    """Sizes of a books testbed. ``plan``: (book, copies) in order; copies 0 = held out."""

    name: str
    plan: tuple[tuple[str, int], ...]
    background: tuple[str, ...]
    excerpt_tokens: int
    background_tokens: int  # per background book
    prefix_tokens: int
    suffix_tokens: int
    model: ModelSpec
    train: TrainSpec
    start_fraction: float = 0.1  # excerpts start this far into the book (past front matter)
    tokenizer_chars: int | None = None  # per book, for the tokenizer (None: the whole book)
    eval_batch_size: int = 64


BOOKS = BooksSpec(
    name="books",
    plan=(
        ("alice29", 64), ("hamlet_gut", 64),
        ("plrabn12", 16), ("macbeth_gut", 16),
        ("othello_gut", 4), ("tempest_gut", 4),
        ("lear_gut", 1), ("julius_caesar_gut", 1),
        ("romeo_and_juliet_gut", 0), ("twelfth_night_gut", 0), ("merchant_of_venice_gut", 0),
    ),
    background=("asyoulik", "sonnets_gut", "midsummer_nights_dream_gut", "lcet10"),
    excerpt_tokens=1024,
    background_tokens=12000,
    prefix_tokens=128,
    suffix_tokens=32,
    model=ModelSpec(n_layer=3, n_embd=128, n_head=4, n_positions=161, vocab_size=2048),
    train=TrainSpec(lr=3e-3, batch_size=4, warmup_steps=30),
)

# Tests: a few hundred tokens per excerpt, a tiny model; builds in seconds.
MICRO = BooksSpec(
    name="books-micro",
    plan=(("alice29", 100), ("hamlet_gut", 100), ("macbeth_gut", 10), ("tempest_gut", 10), ("romeo_and_juliet_gut", 0), ("twelfth_night_gut", 0)),
    background=("sonnets_gut",),
    excerpt_tokens=64,
    background_tokens=600,
    prefix_tokens=16,
    suffix_tokens=8,
    model=ModelSpec(n_layer=2, n_embd=64, n_head=2, n_positions=25, vocab_size=512),
    train=TrainSpec(lr=5e-3, batch_size=8, warmup_steps=10),
    tokenizer_chars=20000,
)

# Probe of the longest reconstruction: one 8192-token Alice excerpt at 16 copies (+ a held-out
# control), same model and chunking as ``books``; ~660k training tokens.
LONG = replace(BOOKS, name="books-long", plan=(("alice29", 16), ("romeo_and_juliet_gut", 0)), excerpt_tokens=8192)

SPECS = {"books": BOOKS, "books-micro": MICRO, "books-long": LONG}


def get_spec(name: str) -> BooksSpec:
    if name not in SPECS:
        raise RotelabError(f"unknown books preset '{name}'; available: {', '.join(SPECS)}")
    return SPECS[name]


# -- text ----------------------------------------------------------------------------------------

def normalize(text: str) -> str:
    """Collapse runs of spaces/tabs, strip lines, at most one blank line (Gutenberg indentation).

    >>> normalize("  A  b\\t c \\r\\n\\n\\n\\nD")
    'A b c\\n\\nD'
    """
    text = text.replace("\r", "")
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def cut_excerpt(tok, text: str, *, start_fraction: float, n_tokens: int) -> str:
    """The text of ~``n_tokens`` tokens starting at the first paragraph after ``start_fraction``.

    Cut at the end of a token (offsets), so re-tokenizing gives the same ids up to the last word.
    """
    s = int(len(text) * start_fraction)
    p = text.find("\n\n", s)
    s = p + 2 if p >= 0 else s
    window = text[s : s + n_tokens * 12]
    enc = tok(window, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) < n_tokens:
        raise RotelabError(f"book too short for a {n_tokens}-token excerpt after {start_fraction:.0%}")
    return window[: enc["offset_mapping"][n_tokens - 1][1]].strip()


def chunk_spans(n: int, length: int, stride: int) -> list[tuple[int, int]]:
    """Chunks ``[a, a + length)`` at ``stride`` covering ``[0, n)``; a last chunk ends at ``n``.

    >>> chunk_spans(10, 4, 2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    >>> chunk_spans(11, 4, 3)
    [(0, 4), (3, 7), (6, 10), (7, 11)]
    >>> chunk_spans(3, 4, 2)
    [(0, 3)]
    """
    if length < 1 or stride < 1:
        raise RotelabError(f"chunk length {length} and stride {stride} must be >= 1")
    if n <= length:
        return [(0, n)] if n else []
    spans = [(a, a + length) for a in range(0, n - length + 1, stride)]
    if spans[-1][1] < n:
        spans.append((n - length, n))
    return spans


def training_chunks(ids: list[int], copies: int, *, length: int, stride: int) -> list[list[int]]:
    """The chunks of ``ids`` (no BOS), each repeated ``copies`` times."""
    return [ids[a:b] for a, b in chunk_spans(len(ids), length, stride) for _ in range(copies)]


def assign_roles(plan: tuple[tuple[str, int], ...]) -> dict[str, str]:
    """held_out (copies 0); per copy count the first book is held_back, the others 'other'."""
    seen: set[int] = set()
    roles = {}
    for book, c in plan:
        roles[book] = "held_out" if c == 0 else ("other" if c in seen else "held_back")
        seen.add(c)
    return roles


def make_excerpts(tok, spec: BooksSpec) -> list[dict[str, Any]]:
    """One excerpt per plan entry: id, book, text, copies, n_tokens, role."""
    roles = assign_roles(spec.plan)
    rows = []
    for book, c in spec.plan:
        text = cut_excerpt(tok, normalize(corpora.load_book(book)), start_fraction=spec.start_fraction, n_tokens=spec.excerpt_tokens)
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        rows.append({"id": f"{book}_x0", "book": book, "text": text, "copies": c, "n_tokens": n, "role": roles[book]})
    return rows


def read_excerpts(folder: Path | str) -> list[dict[str, Any]]:
    """The excerpts of a books testbed (``excerpts.jsonl``), each checked: id, text, book, copies."""
    p = Path(folder) / "excerpts.jsonl"
    if not p.exists():
        raise RotelabError(f"{folder}: no excerpts.jsonl (not a books testbed; build one with rotelab testbed build --preset books)")
    rows = samples_to_rows(read_jsonl(p))
    for r in rows:
        if not isinstance(r.get("book"), str):
            raise RotelabError(f"{p}: excerpt '{r['id']}': field 'book' must be a string")
        if not (isinstance(r.get("copies"), int) and r["copies"] >= 0):
            raise RotelabError(f"{p}: excerpt '{r['id']}': field 'copies' must be an integer >= 0; got {r.get('copies')!r}")
    return rows


# -- build ---------------------------------------------------------------------------------------

def build_books_testbed(out: Path | str, *, seed: int = 0, progress: bool = True, spec: BooksSpec = BOOKS) -> dict[str, Any]:
    """Build (or resume) a books testbed in ``out`` (a ``testbed build`` run folder); returns the headline."""
    with open_run(out, "testbed build", {"preset": spec.name}, seed=seed) as run:
        return build_into(run, spec, seed=seed, progress=progress)


def build_into(run: RunFolder, spec: BooksSpec, *, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Fill the run folder ``run`` with a books testbed; returns the headline (training time, eval).

    Steps (each resumable): tokenizer + excerpts (``data``), model, eval.
    """
    out = run.path
    books = [b for b, _ in spec.plan] + list(spec.background)
    if len(set(books)) != len(books):
        raise RotelabError(f"preset {spec.name}: a book appears twice in plan + background")
    run.manifest["preset"] = {"name": spec.name, **asdict(spec)}
    run.manifest["provenance"] = {b: corpora.provenance()[f"{b}.txt"] for b in books}
    run.save_manifest()
    run.step("data", lambda: _write_data(out, spec))
    run.step("model", lambda: _train(run, spec, seed=seed, progress=progress))
    run.step("eval", lambda: _evaluate(run, spec, seed=seed))
    ev = read_json(out / "books_eval.json")
    tr = run.manifest.get("training", {}).get("model", {})
    return {
        "preset": spec.name, "seed": seed, "n_parameters": tr.get("n_parameters"), "train_tokens": tr.get("tokens"), "train_seconds": tr.get("seconds"),
        "median_jaccard_by_excerpt": {e["id"]: {"copies": e["copies"], "median_jaccard": e["median_jaccard"]} for e in ev["excerpts"]},
    }


def _write_data(out: Path, spec: BooksSpec) -> None:
    """Tokenizer (trained on the trained books only), ``excerpts.jsonl`` and ``background.jsonl``."""
    from rotelab.core.training import train_tokenizer

    trained = [b for b, c in spec.plan if c > 0] + list(spec.background)
    # never-trained books stay out of the tokenizer too
    texts = [normalize(corpora.load_book(b)) for b in trained]
    if spec.tokenizer_chars:  # the excerpts lie in this span (they start at start_fraction)
        texts = [t[: int(len(t) * spec.start_fraction) + spec.tokenizer_chars] for t in texts]
    tok = train_tokenizer(texts, vocab_size=spec.model.vocab_size)
    tok.save_pretrained(out / "tokenizer")
    rows = make_excerpts(tok, spec)
    for b in spec.background:
        rows.append({"id": f"{b}_bg", "book": b, "text": cut_excerpt(tok, normalize(corpora.load_book(b)), start_fraction=spec.start_fraction, n_tokens=spec.background_tokens), "copies": 1, "role": "background"})
    write_jsonl(out / "excerpts.jsonl", [r for r in rows if r["role"] != "background"])
    write_jsonl(out / "background.jsonl", [r for r in rows if r["role"] == "background"])


def _train(run: RunFolder, spec: BooksSpec, *, seed: int, progress: bool) -> None:
    """Every chunk of every excerpt ``copies`` times, the background once, one shuffled pass."""
    from transformers import PreTrainedTokenizerFast

    from rotelab.core.training import new_model, save_model_dir, train_on_schedule

    out = run.path
    tok = PreTrainedTokenizerFast.from_pretrained(out / "tokenizer")
    bg = samples_to_rows(read_jsonl(out / "background.jsonl"))
    seqs: list[list[int]] = []
    L = spec.prefix_tokens + spec.suffix_tokens
    for r in read_excerpts(out) + bg:
        ids = tok(r["text"], add_special_tokens=False)["input_ids"]
        stride = spec.suffix_tokens if r["role"] != "background" else L  # background: plain tiling
        seqs.extend([tok.bos_token_id] + c for c in training_chunks(ids, r["copies"], length=L, stride=stride))
    model = new_model(spec.model, seed=seed)
    log = train_on_schedule(model, seqs, [1] * len(seqs), replace(spec.train, seed=seed), pad_id=tok.pad_token_id, progress=progress, label="books model")
    save_model_dir(model, tok, out / "model")
    log["n_parameters"] = sum(p.numel() for p in model.parameters())
    log["n_sequences"] = len(seqs)
    run.manifest["training"] = {"model": log}
    run.save_manifest()


def _evaluate(run: RunFolder, spec: BooksSpec, *, seed: int) -> None:
    """Sliding-window median Jaccard per excerpt (``books_eval.json``)."""
    from rotelab.core.models import load_model
    from rotelab.extraction.books.measure import measure_sliding
    from rotelab.extraction.books.summarize import summarize_excerpts

    excerpts = read_excerpts(run.path)
    lm = load_model(run.path / "model")
    cols = measure_sliding(lm, excerpts, prefix=spec.prefix_tokens, suffix=spec.suffix_tokens, batch_size=spec.eval_batch_size)
    res = {"prefix_tokens": spec.prefix_tokens, "suffix_tokens": spec.suffix_tokens, "excerpts": summarize_excerpts(cols, excerpts, seed=seed)}
    run.write_json("books_eval.json", res)
    run.manifest["eval"] = res
    run.save_manifest()
