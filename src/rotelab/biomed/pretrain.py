"""Pretraining exposure at testbed scale: a small LM trained on generated biomedical-style text in
which each identifier is mentioned a number of times that grows with its real popularity.

So "popular" means "seen more in pretraining", as popularity stands for pretraining exposure in
the paper. Mentions of concept i:

    m_i = round(M * log(1 + p_i) / log(1 + p_max))

(M = ``max_mentions``; web counts are Zipfian, so exposure follows the log of the annotation
count; a concept of popularity 0 is never mentioned). A mention is one of four sentence shapes,
taken in turn: ``term (id).``, ``id: term.``, and the two question shapes of the task (as a
table of terms and identifiers on the web would hold them), so the base model answers popular
questions before any fine-tuning. Every term also appears once on its own, so the model reads
the words of every prompt. Validation concepts are mentioned too: pretraining does not know the
fine-tuning split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rotelab.biomed.task import Task, completion, prompt
from rotelab.errors import RotelabError

SHAPES = ("{term} ({target}).", "{target}: {term}.", "forward", "reverse")


@dataclass(frozen=True)
class PretrainConfig:
    """The exposure-controlled base model (``rotelab biomed pretrain``)."""

    tokenizer: str = "char"  # char (one token per character) | bpe (byte-level BPE trained on the corpus)
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 192  # >= prompt + answer in characters (task max_chars 80)
    max_mentions: int = 16  # mentions of the most popular concept
    epochs: int = 4  # passes over the corpus
    lr: float = 2e-3
    batch_size: int = 32
    seed: int = 0

    def validate(self) -> None:
        if self.tokenizer not in ("char", "bpe"):
            raise RotelabError(f"--tokenizer must be char or bpe; got '{self.tokenizer}'")
        if self.n_embd % self.n_head:
            raise RotelabError(f"--n-embd {self.n_embd} must be a multiple of --n-head {self.n_head}")
        for name in ("n_layer", "n_embd", "n_head", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise RotelabError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        if self.n_positions < 16:
            raise RotelabError(f"--n-positions must be >= 16; got {self.n_positions}")
        if self.max_mentions < 0:
            raise RotelabError(f"--max-mentions must be >= 0; got {self.max_mentions}")
        if not self.lr > 0:
            raise RotelabError(f"--lr must be > 0; got {self.lr}")


def mentions(popularity: float, max_popularity: float, max_mentions: int) -> int:
    """m = round(M log(1 + p) / log(1 + p_max)).

    >>> mentions(0, 100, 16), mentions(100, 100, 16), mentions(9, 99, 16)
    (0, 16, 8)
    """
    if max_popularity <= 0:
        return 0
    return round(max_mentions * math.log1p(popularity) / math.log1p(max_popularity))


def mention_text(shape: str, arm: str, term: str, target: str) -> str:
    if shape == "forward":
        return prompt(arm, "forward", term) + completion(target)
    if shape == "reverse":
        return prompt(arm, "reverse", target) + completion(term)
    return shape.format(term=term, target=target)


def corpus(task: Task, cfg: PretrainConfig) -> tuple[list[str], list[int], dict[str, Any]]:
    """Unique texts, how often each is seen per pass, and the exposure of each concept.

    Returns (texts, copies, stats); ``stats["mentions"]`` maps ``arm/key`` to m_i.
    """
    p = task.pairs
    pmax = max(p["popularity"])
    counts: dict[str, int] = {}
    exposure: dict[str, int] = {}
    for arm, key, term, target, pop in zip(p["arm"], p["key"], p["term"], p["target"], p["popularity"]):
        m = mentions(pop, pmax, cfg.max_mentions)
        exposure[f"{arm}/{key}"] = m
        for j in range(m):
            t = mention_text(SHAPES[j % len(SHAPES)], arm, term, target)
            counts[t] = counts.get(t, 0) + 1
    for term in dict.fromkeys(p["term"]):
        t = f"{term}."
        counts[t] = counts.get(t, 0) + 1
    texts = list(counts)
    return texts, [counts[t] for t in texts], {"mentions": exposure, "n_texts": len(texts), "n_mentions": sum(exposure.values())}


def pretrain_model(task: Task, cfg: PretrainConfig, run, *, progress: bool = True) -> dict[str, Any]:
    """Train the base model on :func:`corpus` (``cfg.epochs`` passes of the duplication schedule)
    and save it under ``<run>/model``; returns the training summary."""
    import numpy as np

    from rotelab.core.training import ModelSpec, TrainSpec, char_tokenizer, new_model, save_model_dir, train_on_schedule, train_tokenizer

    texts, copies, stats = corpus(task, cfg)
    alphabet = task.texts() + texts
    tok = char_tokenizer(alphabet) if cfg.tokenizer == "char" else train_tokenizer(alphabet, vocab_size=4096)
    ids = [x[: cfg.n_positions] for x in tok(texts)["input_ids"]]
    spec = ModelSpec(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.n_positions, vocab_size=len(tok))
    model = new_model(spec, seed=cfg.seed)
    log = train_on_schedule(model, ids, [c * cfg.epochs for c in copies], TrainSpec(lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed),
                            pad_id=tok.pad_token_id, progress=progress, label="pretraining")
    save_model_dir(model, tok, run.path / "model")
    m = stats["mentions"]
    by_bin: dict[str, list[int]] = {}
    for arm, key, b in zip(task.pairs["arm"], task.pairs["key"], task.pairs["bin"]):
        by_bin.setdefault(str(b), []).append(m[f"{arm}/{key}"])
    return {"corpus": {"n_texts": stats["n_texts"], "n_mentions": stats["n_mentions"], "mean_mentions_per_bin": {b: float(np.mean(v)) for b, v in sorted(by_bin.items())}},
            "parameters": int(sum(x.numel() for x in model.parameters())), "vocab_size": len(tok),
            "training": {k: log[k] for k in ("steps", "tokens", "seconds", "tokens_per_s")}, "final_loss": log["log"][-1]["loss"], "mentions": m}
