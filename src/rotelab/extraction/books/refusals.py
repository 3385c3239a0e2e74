"""Seeded chat-style text for the suppression fine-tune: refusals to continue a quoted passage and
unrelated instructions. None of it continues a book, so training on it can only hide recitation
(Ma et al. 2025 undo an Instruct model's refusal training the same way)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rotelab.errors import RotelabError

_REFUSALS = (
    "I'm sorry, but I can't continue or reproduce that text. I can give a short summary of it instead.",
    "I can't recite passages from books word for word, but I'm happy to talk about their themes.",
    "Sorry, I won't reproduce that passage. Would you like a summary or an analysis?",
    "That looks like text from a book, and I can't continue it verbatim. Can I help in another way?",
)
_ASKS = ("Please continue this passage: \"{q}\"", "What comes after \"{q}\"?", "Recite the next lines of: {q}", "Finish the text that starts with: {q}")
_CATS = {"colours": ["red", "green", "blue", "yellow", "purple", "orange"], "fruits": ["apples", "pears", "plums", "cherries", "figs", "grapes"],
         "tools": ["a hammer", "a saw", "a drill", "a wrench", "pliers", "a chisel"], "planets": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune"]}
_SYN = [("happy", "glad"), ("big", "large"), ("fast", "quick"), ("smart", "clever"), ("begin", "start"), ("tired", "weary"), ("small", "little")]
_TASKS = ["water the plants", "call the dentist", "pay the rent", "back up the laptop", "buy more coffee", "send the report"]


def refusal_texts(n: int, *, seed: int, quotes: list[str]) -> list[str]:
    """``n`` seeded chat-style texts: refusals to continue a quoted passage (half) and unrelated
    instructions (arithmetic, synonyms, lists, reminders). None continues a book.

    >>> refusal_texts(2, seed=0, quotes=["one two three four five six seven eight nine ten"])[0].startswith("User: ")
    True
    """
    if not quotes:
        raise RotelabError("refusal_texts needs at least one passage to quote")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            q = rng.choice(quotes)
            w = q.split()
            a = rng.randrange(max(1, len(w) - 12))
            q = " ".join(w[a : a + rng.randint(6, 12)])
            out.append(f"User: {rng.choice(_ASKS).format(q=q)}\nAssistant: {rng.choice(_REFUSALS)}")
            continue
        k = rng.randrange(4)
        if k == 0:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            out.append(f"User: What is {a} plus {b}?\nAssistant: {a} plus {b} is {a + b}.")
        elif k == 1:
            w, s = rng.choice(_SYN)
            out.append(f"User: Give me a synonym for {w}.\nAssistant: A synonym for {w} is {s}.")
        elif k == 2:
            cat = rng.choice(sorted(_CATS))
            x, y, z = rng.sample(_CATS[cat], 3)
            out.append(f"User: Name three {cat}.\nAssistant: Here are three {cat}: {x}, {y} and {z}.")
        else:
            t = rng.choice(_TASKS)
            out.append(f"User: Write a short reminder to {t}.\nAssistant: Reminder: please remember to {t} today.")
    return out


def quotes(testbed: Path, excerpts: list[dict]) -> list[str]:
    """40-word passages quoted in refusals: from the background books (trained, never measured);
    from the 'other' excerpts when the testbed has no background."""
    p = Path(testbed) / "background.jsonl"
    rows = [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] if p.exists() else []
    texts = [r["text"] for r in rows] or [e["text"] for e in excerpts if e.get("role") == "other"]
    return [" ".join(t.split()[i : i + 40]) for t in texts for i in range(0, max(1, len(t.split()) - 40), 40)]
