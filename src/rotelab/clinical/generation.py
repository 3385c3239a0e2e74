"""Sampled continuations of the ladder's prompts, through the shared decoder (KV cache, batched,
seeded per prompt and sample), saved in resumable chunks inside the run folder.

Identical prompts (a canary's copies, or any two records that agree on a prompt) are decoded
once: the result is a function of the prompt, so copies share their continuations.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Sequence

import numpy as np

from rotelab.core.io import load_npy, save_npy

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.core.runs import RunFolder

CHUNK = 64  # unique prompts per resumable step
GENERATIONS = "generations"


def dedupe(prompts: Sequence[Sequence[int] | None]) -> tuple[list[list[int]], np.ndarray]:
    """Unique prompts in first-seen order, and each input's row among them (-1 for None).

    >>> dedupe([[1, 2], None, [1, 2], [3]])
    ([[1, 2], [3]], array([ 0, -1,  0,  1]))
    """
    rows: dict[tuple[int, ...], int] = {}
    index = np.full(len(prompts), -1)
    for i, p in enumerate(prompts):
        if p is not None:
            index[i] = rows.setdefault(tuple(p), len(rows))
    return [list(p) for p in rows], index


def chunk_seed(seed: int, name: str, chunk: int) -> int:
    h = hashlib.sha256(f"clinical:{seed}:{name}:{chunk}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 62) - 1)


def sample_continuations(run: "RunFolder", lm: "HFLanguageModel", name: str, prompts: list[list[int]], *, n: int, new_tokens: int,
                         temperature: float, top_p: float, seed: int, batch_size: int, progress: bool) -> np.ndarray:
    """(U, n, new_tokens) int32 continuations of each prompt; each chunk of :data:`CHUNK` prompts
    is a run step (a killed run resumes at the next unfinished chunk)."""
    from rotelab.core.generate import Sampling, decode

    if not prompts:
        return np.zeros((0, n, new_tokens), dtype=np.int32)
    K = (len(prompts) + CHUNK - 1) // CHUNK
    parts = []
    for k in range(K):
        path = run.file(f"{GENERATIONS}/{name}-{k:04d}.npy")
        chunk = prompts[k * CHUNK : (k + 1) * CHUNK]

        def go(chunk=chunk, k=k, path=path):
            d = decode(lm, chunk, new_tokens, sampling=Sampling(temperature=temperature, top_p=top_p, n=n, seed=chunk_seed(seed, name, k)),
                       batch_size=batch_size, progress=progress, label=f"sampling, {name} [{k + 1}/{K}]")
            arr = np.asarray(d.tokens, dtype=np.int32)  # (chunk, n, new_tokens)
            save_npy(path, arr)
            return arr

        parts.append(run.step(f"generate:{name}:{k}", go, load=lambda path=path: load_npy(path)))
    return np.concatenate(parts)


def cut(seq: np.ndarray, stops: set[int]) -> np.ndarray:
    """A generated trajectory up to its first stop token (EOS, padding).

    >>> cut(np.array([5, 6, 2, 7]), {2}).tolist()
    [5, 6]
    """
    for j, t in enumerate(seq.tolist()):
        if t in stops:
            return seq[:j]
    return seq
