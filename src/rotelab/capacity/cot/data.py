"""Finite reasoning datasets for the chain-of-thought capacity lab, and the condition checker.

Yu, Gao, Zhang, "Analyzing the Power of Chain of Thought through Memorization Capabilities"
(NeurIPS 2025, arXiv 2511.01190): a fixed-precision autoregressive transformer memorises
S = {(x, y)} iff F(x) = y for every example; the conditions for memorising with and without CoT
differ and neither implies the other.

Token layout (shared by every generator). Inputs and traces use the alphabet ``0 .. A-1``; labels
are their own tokens so that the model itself decides when it answers::

    no CoT:  x_1 ... x_L  ->  y
    CoT:     x_1 ... x_L  ->  t_1 ... t_k  ->  y

A trace may use alphabet symbols (parity, composition, prefix conflicts) or the dedicated PAUSE
token (``pause_trace``: extra computation steps that carry no information).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Vocab:
    """Token ids: alphabet symbols, then labels, then PAUSE and PAD."""

    alphabet: int
    n_labels: int

    def label(self, c: int) -> int:
        return self.alphabet + c

    @property
    def pause(self) -> int:
        return self.alphabet + self.n_labels

    @property
    def pad(self) -> int:
        return self.alphabet + self.n_labels + 1

    @property
    def size(self) -> int:
        return self.alphabet + self.n_labels + 2


@dataclass
class ReasoningSet:
    """N examples: inputs ``xs`` (alphabet ids), optional traces, labels in ``[n_labels]``."""

    name: str
    vocab: Vocab
    xs: list[tuple[int, ...]]
    ys: list[int]
    traces: list[tuple[int, ...]] = field(default_factory=list)  # empty: no CoT trace defined

    def __len__(self) -> int:
        return len(self.xs)

    def sequences(self, *, cot: bool) -> list[tuple[list[int], int]]:
        """(token sequence, index of the first position whose next token is supervised)."""
        out = []
        for i, (x, y) in enumerate(zip(self.xs, self.ys)):
            t = list(self.traces[i]) if cot else []
            out.append((list(x) + t + [self.vocab.label(y)], len(x) - 1))
        return out


def random_labels(n: int, *, length: int = 8, alphabet: int = 4, n_labels: int = 2, seed: int = 0) -> ReasoningSet:
    """N distinct random strings of ``length`` symbols with uniformly random labels (no structure)."""
    if alphabet**length < n:
        raise ValueError(f"only {alphabet ** length} strings of length {length} over {alphabet} symbols; asked for {n}")
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < n:
        seen.add(tuple(int(v) for v in rng.integers(0, alphabet, length)))
    xs = sorted(seen)
    rng.shuffle(xs)
    ys = [int(v) for v in rng.integers(0, n_labels, n)]
    return ReasoningSet("random_labels", Vocab(alphabet, n_labels), xs, ys)


def pause_trace(data: ReasoningSet, k: int = 2) -> ReasoningSet:
    """The same examples with a CoT trace of ``k`` PAUSE tokens (extra steps, no information)."""
    return ReasoningSet(f"{data.name}+pause{k}", data.vocab, data.xs, data.ys, [(data.vocab.pause,) * k] * len(data))


def parity(n: int, *, length: int = 8, seed: int = 0) -> ReasoningSet:
    """Binary strings; label = parity; trace = running prefix parities p_1 .. p_L (as symbols 0/1)."""
    base = random_labels(n, length=length, alphabet=2, n_labels=2, seed=seed)
    traces = [tuple(int(v) for v in np.cumsum(x) % 2) for x in base.xs]
    return ReasoningSet("parity", base.vocab, base.xs, [t[-1] for t in traces], traces)


def composition(n: int, *, length: int = 6, alphabet: int = 4, n_labels: int = 2, seed: int = 0) -> ReasoningSet:
    """A random automaton: s_0 = 0, s_j = delta(s_{j-1}, x_j) with states in the alphabet; the trace
    is s_1 .. s_L and the label a random map of s_L (parity is the 2-state XOR automaton)."""
    base = random_labels(n, length=length, alphabet=alphabet, n_labels=n_labels, seed=seed)
    rng = np.random.default_rng(seed + 1)
    delta = rng.integers(0, alphabet, (alphabet, alphabet))
    out_map = rng.integers(0, n_labels, alphabet)
    traces, ys = [], []
    for x in base.xs:
        s, t = 0, []
        for sym in x:
            s = int(delta[s, sym])
            t.append(s)
        traces.append(tuple(t))
        ys.append(int(out_map[s]))
    return ReasoningSet("composition", base.vocab, base.xs, ys, traces)


SINGLE_LABELS = ("parity", "threshold")


def single_symbol(n_max: int, *, symbol: int = 0, alphabet: int = 2, pause: int = 1, labels: str = "parity") -> ReasoningSet:
    """{(gamma^n, y_n) : n = 1 .. n_max}: no-CoT must fail (NoPE), CoT may succeed for bounded n.

    ``labels="parity"``: y_n = n mod 2 (labels alternate: a CoT model must cut the length axis
    into n_max pieces); ``"threshold"``: y_n = [n > n_max // 2] (one cut; the same no-CoT bound 1/2
    when n_max is even)."""
    if labels not in SINGLE_LABELS:
        raise ValueError(f"labels must be one of {SINGLE_LABELS}; got {labels!r}")
    v = Vocab(alphabet, 2)
    ns = range(1, n_max + 1)
    xs = [(symbol,) * n for n in ns]
    ys = [n % 2 for n in ns] if labels == "parity" else [int(n > n_max // 2) for n in ns]
    return ReasoningSet(f"single_symbol_{labels}", v, xs, ys, [(v.pause,) * pause] * n_max)


def prefix_conflicts(n_pairs: int, *, length: int = 5, alphabet: int = 4, trace_len: int = 3, seed: int = 0) -> ReasoningSet:
    """Pairs x2 = x1 . t1 (x1 followed by the first token of its own trace) whose required
    continuation is x1's remaining trace but whose label differs: CoT must fail on one of each
    pair, no-CoT can tell x1 from x2 and succeed."""
    rng = np.random.default_rng(seed)
    v = Vocab(alphabet, 2)
    xs: list[tuple[int, ...]] = []
    traces: list[tuple[int, ...]] = []
    ys: list[int] = []
    seen: set[tuple[int, ...]] = set()
    while len(xs) < 2 * n_pairs:
        x1 = tuple(int(s) for s in rng.integers(0, alphabet, length))
        if len(set(x1)) == 1 or x1 in seen:  # keep single-symbol inputs out of this family
            continue
        t1 = tuple(int(s) for s in rng.integers(0, alphabet, trace_len))
        x2 = x1 + t1[:1]
        if x2 in seen:
            continue
        seen.update((x1, x2))
        y1 = int(rng.integers(0, 2))
        xs += [x1, x2]
        traces += [t1, t1[1:]]
        ys += [y1, 1 - y1]
    return ReasoningSet("prefix_conflicts", v, xs, ys, traces)


def _single_symbol_conflicts(data: ReasoningSet) -> list[tuple[int, int]]:
    """Pairs (i, j) of inputs made of one repeated symbol, same symbol, different labels."""
    first: dict[tuple[int, int], int] = {}
    out = []
    for i, x in enumerate(data.xs):
        if len(set(x)) == 1:
            key = (x[0], data.ys[i])
            first.setdefault(key, i)
            for c in range(data.vocab.n_labels):
                j = first.get((x[0], c))
                if c != data.ys[i] and j is not None:
                    out.append((j, i))
    return out


def _trajectory_conflicts(data: ReasoningSet) -> list[tuple[int, int]]:
    """Pairs (i, j) whose generations pass through one context with different next tokens.

    Generation of example i visits the contexts x_i . t_i[:m], m = 0 .. |t_i|, and must emit
    the next token of x_i . t_i . y_i there; a deterministic model emits one token per context.
    """
    demands: dict[tuple[int, ...], tuple[int, int]] = {}
    out = []
    for i, seq_start in enumerate(data.sequences(cot=True)):
        seq, start = seq_start
        for p in range(start, len(seq) - 1):
            ctx = tuple(seq[: p + 1])
            tok = seq[p + 1]
            if ctx in demands and demands[ctx][1] != tok:
                out.append((demands[ctx][0], i))
            demands.setdefault(ctx, (i, tok))
    return out


def _majority_bound(data: ReasoningSet) -> float:
    """Best accuracy of a no-CoT NoPE model: inputs that must share an output (equal inputs;
    single-symbol inputs of one symbol) score at most their majority label count."""
    groups: dict[tuple, list[int]] = {}
    for x, y in zip(data.xs, data.ys):
        key = ("sym", x[0]) if len(set(x)) == 1 else ("x", x)
        groups.setdefault(key, []).append(y)
    best = sum(int(np.bincount(ys).max()) for ys in groups.values())
    return best / len(data)


def _matching_bound(pairs: list[tuple[int, int]], n: int) -> float:
    """1 - |M|/n for a greedy set M of disjoint conflicting pairs: each loses one example."""
    used: set[int] = set()
    m = 0
    for i, j in pairs:
        if i not in used and j not in used:
            used.update((i, j))
            m += 1
    return 1.0 - m / n


def check_conditions(data: ReasoningSet) -> dict[str, Any]:
    """Whether ``data`` meets the memorisation conditions as the research note states them.

    * no CoT (NoPE) [2nd]: equal inputs share a label, and any two inputs made solely of the
      same repeated symbol share a label (attention averages identical vectors, so the output
      cannot depend on the length).
    * CoT [R]: (i) trajectory consistency: no context visited while generating demands two
      different next tokens; (ii) single-symbol inputs of different labels are separable only up
      to a precision-dependent length (counted, not decided).
    ``max_accuracy`` is an upper bound on the share a model can memorise (exact for no-CoT).
    """
    n = len(data)
    single = _single_symbol_conflicts(data)
    nocot_bound = _majority_bound(data)
    out: dict[str, Any] = {
        "dataset": data.name,
        "n": n,
        "no_cot": {"holds": bool(nocot_bound == 1.0), "violations": single, "max_accuracy": nocot_bound},
    }
    if data.traces:
        traj = _trajectory_conflicts(data)
        out["cot"] = {
            "holds": not traj,
            "violations": traj,
            "max_accuracy": _matching_bound(traj, n),
            "single_symbol_pairs": len(single),
            "single_symbol_reason": "CoT separates these only up to a precision-dependent length" if single else None,
        }
    return out
