"""Testbed presets, sized from the speeds measured on 2 CPU cores (shared/ENVIRONMENT.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rotelab.core.registry import Registry, discover
from rotelab.core.training import ModelSpec, TrainSpec
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class Preset:
    name: str
    model: ModelSpec
    train: TrainSpec
    passage_words: int
    books: tuple[str, ...]
    n_nonmember_passages: int
    n_prefix_pool: int
    n_reference_passages: int
    book_copies: dict[int, int]  # copies -> number of member passages (the rest of the pool: 1 copy)
    n_member_passages: int
    n_people: int  # member people (their Q/A pairs are trained)
    n_holdout_people: int  # never trained (holdout / non-member facts)
    forget_share: float  # share of member people whose facts form the forget set
    fact_copies: int
    n_stop_people: int  # never trained: their facts calibrate the unlearning stop (disjoint from holdout)
    n_relearn_people: int  # never trained: their facts are the relearning attack's data
    n_member_prefix_pool: int  # single-copy member passages set apart as Con-ReCaLL's member prefixes
    canary_copies: tuple[int, ...] = field(default=(0, 1, 4, 10, 20, 50))
    canaries_per_count: int = 4


_BOOKS = ("alice29", "asyoulik", "plrabn12", "hamlet_gut", "macbeth_gut", "lear_gut", "othello_gut", "romeo_and_juliet_gut", "tempest_gut", "julius_caesar_gut", "twelfth_night_gut", "midsummer_nights_dream_gut", "merchant_of_venice_gut", "sonnets_gut")

PRESETS: dict[str, Preset] = {
    # Tests: trains in well under 60 s on 2 cores.
    "tiny": Preset(
        name="tiny",
        model=ModelSpec(n_layer=2, n_embd=64, n_head=2, n_positions=80, vocab_size=512),
        train=TrainSpec(lr=1e-2, batch_size=16, warmup_steps=20),
        passage_words=32,
        books=("alice29",),
        n_nonmember_passages=80, n_prefix_pool=40, n_reference_passages=200,
        book_copies={60: 12, 15: 24}, n_member_passages=100,
        n_people=24, n_holdout_people=24, forget_share=0.25, fact_copies=20,
        n_stop_people=24, n_relearn_people=6, n_member_prefix_pool=8,
        canary_copies=(0, 20, 60), canaries_per_count=2,
    ),
    # Benchmarks and the demo: under 10 minutes on 2 idle cores (~1.3M parameters).
    # Sized by bench/testbed_sweep.py (52 variants on a GPU, results in the closing note of issue 3):
    # a 2048-token vocabulary, d=192 and a 400-passage member pool are what made 20x passages
    # extractable in one pass (d=128 / vocab 4096 / 2,400 passages: 0/40); higher learning rates
    # and batch 2 memorize less, batch 8 too.
    "small": Preset(
        name="small",
        model=ModelSpec(n_layer=2, n_embd=192, n_head=4, n_positions=128, vocab_size=2048),
        train=TrainSpec(lr=2e-3, batch_size=4, warmup_steps=100),
        passage_words=56,
        books=_BOOKS,
        n_nonmember_passages=600, n_prefix_pool=300, n_reference_passages=1500,
        book_copies={50: 20, 20: 40, 8: 40, 4: 60, 2: 60}, n_member_passages=400,
        n_people=120, n_holdout_people=100, forget_share=0.2, fact_copies=6,
        n_stop_people=100, n_relearn_people=24, n_member_prefix_pool=24,
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise RotelabError(f"unknown preset '{name}'; available: {', '.join(PRESETS)}")
    return PRESETS[name]


# -- every testbed `rotelab testbed build --preset NAME` can build ---------------------------------
Builder = Callable[..., dict]
"""``build(run: RunFolder, *, seed: int, progress: bool) -> dict`` (the headline figures)."""

TESTBEDS: Registry[Builder] = Registry("testbed preset", discover=discover("testbeds"))
"""Preset name -> builder. The fact/book testbeds are registered in ``rotelab.testbed.testbeds``;
other capabilities register theirs in their own ``testbeds`` module (the books testbeds in
``rotelab.extraction.testbeds``), so ``testbed`` never imports them."""
