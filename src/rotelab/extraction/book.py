"""Verbatim extraction of a book by prefix prompting (Ma et al. 2025, *Memorization: A Close Look at Books*).

The book's tokens are trimmed (front matter, licence), then cut into windows: a ``prefix``-token
prompt and the true ``suffix`` tokens after it. The model decodes ``suffix`` tokens greedily.

* sliding: every window conditions on the *true* preceding ``prefix`` tokens (stride ``stride``).
* autoregressive: seeded with the first true prefix; the model's own output is fed back, so the
  run reconstructs the book (stride = ``suffix``).

Each window is scored with the core's similarity panel (exact match on token ids).

References
----------
1. Ma, Domingo, Krone-Martins, Baldi, Lopes. Memorization: A Close Look at Books. arXiv 2504.12549.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from rotelab.core.access import Access
from rotelab.core.data import read_book
from rotelab.core.models import LanguageModel
from rotelab.core.similarity import METRICS, panel
from rotelab.errors import RotelabError

Mode = Literal["sliding", "autoregressive"]


@dataclass(frozen=True)
class BookConfig:
    """Paper defaults (for users' large models); :func:`fit_to_context` shrinks them for small ones."""

    prefix_tokens: int = 500
    suffix_tokens: int = 30
    stride: int | None = None  # None: = suffix_tokens (non-overlapping suffixes)
    trim_start: int = 2000
    trim_end: int = 5000  # licence text at the end of Gutenberg books
    mode: Mode = "sliding"
    batch_size: int = 32
    max_windows: int | None = None  # None: the whole book

    @property
    def step(self) -> int:
        return self.suffix_tokens if self.mode == "autoregressive" or self.stride is None else self.stride

    def validate(self) -> None:
        """One-line errors naming the option and value."""
        for name in ("prefix_tokens", "suffix_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise RotelabError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        for name in ("trim_start", "trim_end"):
            if getattr(self, name) < 0:
                raise RotelabError(f"--{name.replace('_', '-')} must be >= 0; got {getattr(self, name)}")
        if self.stride is not None and self.stride < 1:
            raise RotelabError(f"--stride must be >= 1; got {self.stride}")
        if self.mode not in ("sliding", "autoregressive"):
            raise RotelabError(f"--mode must be sliding or autoregressive; got '{self.mode}'")
        if self.max_windows is not None and self.max_windows < 1:
            raise RotelabError(f"--max-windows must be >= 1; got {self.max_windows}")


@dataclass(frozen=True)
class Book:
    """A book to extract: its name (reports) and text; ``path`` when read from a file."""

    name: str
    text: str
    path: Path | None = None


def as_book(book: Book | Path | str) -> Book:
    """A :class:`Book` passes through; a path (``Path`` or ``str``) is read as UTF-8 text, not empty."""
    if isinstance(book, Book):
        if not book.text.strip():
            raise RotelabError(f"book '{book.name}' is empty")
        return book
    p = Path(book)
    return Book(p.stem, read_book(p), p)


def fit_to_context(cfg: BookConfig, *, n_tokens: int, max_length: int, bos: int = 0) -> tuple[BookConfig, dict[str, str]]:
    """The largest prefix that fits the context, and trims that leave at least one window.

    1. ``bos + prefix + suffix > max_length``: prefix = max_length - suffix - bos, and both trims are
       scaled by the same ratio (the paper's trims are sized for a 500-token prefix).
    2. Trims leaving fewer than ``prefix + suffix`` tokens: both trims scaled down by one factor
       (their ratio kept) so that exactly the needed text is left.
    3. A book shorter than one window: prefix = n_tokens - suffix.

    Returns the effective config and the notes (key -> sentence) to record in the manifest.

    >>> c, notes = fit_to_context(BookConfig(), n_tokens=3000, max_length=128)
    >>> c.prefix_tokens, c.trim_start, c.trim_end, sorted(notes)
    (98, 392, 980, ['prefix_reduced'])
    >>> c, notes = fit_to_context(BookConfig(), n_tokens=1400, max_length=128)
    >>> c.trim_start, c.trim_end, sorted(notes)
    (363, 908, ['prefix_reduced', 'trims_scaled'])
    """
    notes: dict[str, str] = {}
    if cfg.suffix_tokens + bos >= max_length:
        raise RotelabError(f"--suffix-tokens {cfg.suffix_tokens} leaves no room for a prefix in the model's context of {max_length} tokens")
    if bos + cfg.prefix_tokens + cfg.suffix_tokens > max_length:
        p = max_length - cfg.suffix_tokens - bos
        r = p / cfg.prefix_tokens
        notes["prefix_reduced"] = f"prefix {cfg.prefix_tokens} + suffix {cfg.suffix_tokens} exceeds the context of {max_length}: prefix reduced to {p}, trims scaled by {r:.3f}"
        cfg = replace(cfg, prefix_tokens=p, trim_start=int(cfg.trim_start * r), trim_end=int(cfg.trim_end * r))
    need = cfg.prefix_tokens + cfg.suffix_tokens
    if n_tokens < need:
        p = n_tokens - cfg.suffix_tokens
        if p < 1:
            raise RotelabError(f"the book has {n_tokens} tokens, fewer than --suffix-tokens {cfg.suffix_tokens} + 1")
        notes["book_too_short"] = f"the book has {n_tokens} tokens < prefix + suffix {need}: prefix reduced to {p}, no trims"
        return replace(cfg, prefix_tokens=p, trim_start=0, trim_end=0), notes
    trims = cfg.trim_start + cfg.trim_end
    if n_tokens - trims < need:
        f = (n_tokens - need) / trims
        ts, te = int(cfg.trim_start * f), int(cfg.trim_end * f)
        notes["trims_scaled"] = f"trims {cfg.trim_start}+{cfg.trim_end} leave fewer than {need} of {n_tokens} tokens: scaled to {ts}+{te}"
        cfg = replace(cfg, trim_start=ts, trim_end=te)
    return cfg, notes


def windows(body: list[int], cfg: BookConfig) -> list[tuple[int, list[int], list[int]]]:
    """(start, prefix ids, true suffix ids) for each window of the trimmed body.

    >>> [(s, p, t) for s, p, t in windows(list(range(7)), BookConfig(prefix_tokens=2, suffix_tokens=2))]
    [(0, [0, 1], [2, 3]), (2, [2, 3], [4, 5])]
    """
    P, S, out = cfg.prefix_tokens, cfg.suffix_tokens, []
    for j in range(0, len(body) - P - S + 1, cfg.step):
        out.append((j, body[j : j + P], body[j + P : j + P + S]))
        if cfg.max_windows is not None and len(out) >= cfg.max_windows:
            break
    return out


def book_tokens(lm: LanguageModel, text: str) -> tuple[list[int], list[int]]:
    """(BOS ids, the book's token ids without them)."""
    bos = lm.bos_ids
    ids = lm.tokenize([text])[0]
    return bos, ids[len(bos) :]


@dataclass(frozen=True)
class BookPlan:
    """A book tokenized and the config fitted to it and to the model's context (see :func:`plan_book`)."""

    name: str
    bos: list[int]
    ids: list[int]  # the book's tokens, without BOS
    config: BookConfig  # effective: prefix and trims fitted
    notes: dict[str, str]  # what fitting changed (key -> sentence)

    @property
    def body(self) -> list[int]:
        """The tokens left after the trims."""
        return self.ids[self.config.trim_start : len(self.ids) - self.config.trim_end]


def plan_book(lm: LanguageModel, book: Book, cfg: BookConfig) -> BookPlan:
    """Tokenize ``book`` and fit ``cfg`` to it and to ``lm``'s context (every refusal happens here,
    before a run folder exists)."""
    bos, ids = book_tokens(lm, book.text)
    eff, notes = fit_to_context(cfg, n_tokens=len(ids), max_length=lm.max_length, bos=len(bos))
    return BookPlan(book.name, bos, ids, eff, notes)


def decode_windows(lm: LanguageModel, body: list[int], cfg: BookConfig, *, bos: list[int], progress: bool = False) -> tuple[list[tuple[int, list[int], list[int]]], list[list[int]], list[int] | None]:
    """Greedy suffixes for every window; in autoregressive mode also the reconstructed token stream.

    Sliding windows are independent and decoded in batches; autoregressive windows depend on the
    previous output and are decoded one after another.
    """
    from rotelab.core.console import track

    lm.require(Access.GENERATION, method="book extraction")
    wins = windows(body, cfg)
    if cfg.mode == "sliding":
        gens = lm.greedy([bos + p for _, p, _ in wins], cfg.suffix_tokens, batch_size=cfg.batch_size, progress=progress)
        return wins, gens, None
    recon = list(body[: cfg.prefix_tokens])
    gens = []
    for _ in track(wins, "autoregressive reconstruction", disable=not progress):
        g = lm.greedy([bos + recon[-cfg.prefix_tokens :]], cfg.suffix_tokens, batch_size=1)[0]
        gens.append(g)
        recon.extend(g)
    return wins, gens, recon


def score_windows(lm: LanguageModel, wins, gens: list[list[int]]) -> dict[str, list]:
    """Columns: start, each panel metric (text), exact on token ids, reference and generated text."""
    cols: dict[str, list] = {"start": [], "reference": [], "generated": []} | {m: [] for m in METRICS}
    for (start, _, target), g in zip(wins, gens):
        s, t = lm.detokenize(target), lm.detokenize(g)
        row = panel(s, t) | {"exact": float(list(target) == list(g))}
        cols["start"].append(start)
        cols["reference"].append(s)
        cols["generated"].append(t)
        for m in METRICS:
            cols[m].append(row[m])
    return cols
