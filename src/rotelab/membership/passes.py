"""Model passes beyond the signal pass (perturbed variants, prefixed texts, gradients), in
length-sorted batches, each batch saved in the run folder as soon as it is computed.

A pass interrupted midway (Ctrl-C, kill) keeps every finished batch; the next run reads them back
and computes only the rest. The remaining items are a tail of the same length order, so with the
same batch size they form the same batches, and a resumed pass equals an uninterrupted one.
Every saved item carries a digest of its input: an item whose input changed is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from rotelab.core.batching import length_sorted_batches
from rotelab.core.io import atomic_write_bytes
from rotelab.core.signals import plan_long_texts

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel
    from rotelab.core.runs import RunFolder

X = TypeVar("X")
PASSES = "passes"  # the run sub-folder that holds unfinished passes


def ids_key(x: Any) -> bytes:
    """The bytes that identify an item: its token ids (int64), or those of each part of a tuple."""
    parts = x if isinstance(x, tuple) else (x,)
    return b"".join(len(p).to_bytes(8, "little") + np.asarray(p, dtype=np.int64).tobytes() for p in parts)


def _digest(b: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


def checkpointed_map(
    fn: Callable[[list[X]], Sequence[np.ndarray]],
    items: Sequence[X],
    *,
    folder: Path | None,
    batch_size: int,
    length: Callable[[X], int] = len,
    key: Callable[[X], bytes] = ids_key,
    progress: bool = False,
    label: str = "batches",
    many: "Callable[[list[list[X]]], Iterator[tuple[int, Sequence[np.ndarray]]]] | None" = None,
) -> list[np.ndarray]:
    """``fn`` over length-sorted batches of ``items``: one 1-D array per item, in input order.

    With ``folder``, each batch's results go to ``folder/<first>-<n>.npz`` (indices, input
    digests, lengths, values; no pickle) and results saved there by an earlier call are reused.
    ``many`` (instead of ``fn``): all remaining batches at once, results as (batch index,
    outputs) in any order, e.g. from Ray workers (:func:`logp_many`); each is saved as it comes.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> double = lambda xs: [np.asarray(x, float) * 2 for x in xs]
    >>> [a.tolist() for a in checkpointed_map(double, [[1, 2], [3]], folder=d, batch_size=1)]
    [[2.0, 4.0], [6.0]]
    >>> never = lambda xs: 1 / 0
    >>> [a.tolist() for a in checkpointed_map(never, [[1, 2], [3]], folder=d, batch_size=1)]
    [[2.0, 4.0], [6.0]]
    """
    from rotelab.core.console import progress as bar_

    digests = np.array([_digest(key(x)) for x in items] if folder is not None else [], dtype=np.uint64)
    out: list[np.ndarray | None] = [None] * len(items)
    if folder is not None:
        _read_chunks(folder, digests, out)
    todo = [i for i in range(len(items)) if out[i] is None]
    batches = [[todo[j] for j in b] for b in length_sorted_batches([length(items[i]) for i in todo], batch_size)]
    run = many or (lambda bs: ((j, fn(b)) for j, b in enumerate(bs)))
    with bar_(disable=not progress) as bar:
        task = bar.add_task(label, total=len(todo))
        for j, outs in run([[items[i] for i in b] for b in batches]):
            res = [np.asarray(r).reshape(-1) for r in outs]
            if folder is not None:
                _write_chunk(folder, batches[j], digests[batches[j]], res)
            for i, r in zip(batches[j], res):
                out[i] = r
            bar.advance(task, len(res))
    return out  # type: ignore[return-value]


def _write_chunk(folder: Path, idx: list[int], digests: np.ndarray, res: list[np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, index=np.asarray(idx, dtype=np.int64), digest=digests, length=np.array([len(r) for r in res], dtype=np.int64), values=np.concatenate(res))
    atomic_write_bytes(folder / f"{idx[0]:09d}-{len(idx)}.npz", buf.getvalue())


def _read_chunks(folder: Path, digests: np.ndarray, out: list) -> None:
    for f in sorted(folder.glob("*.npz")):
        try:
            with np.load(f, allow_pickle=False) as z:
                index, digest, lengths, values = z["index"], z["digest"], z["length"], z["values"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue  # not a chunk this code wrote: recompute its items
        for i, d, v in zip(index, digest, np.split(values, np.cumsum(lengths)[:-1])):
            if 0 <= i < len(out) and digests[i] == d:
                out[i] = v


def logp_many(lm: "LanguageModel", batches: list[list[Sequence[int]]], *, label: str = "variants") -> Iterator[tuple[int, list[np.ndarray]]]:
    """(batch index, per token-id list its (T-1,) log-probs) for many batches, in any order: all
    batches go to the backend at once (:meth:`~rotelab.core.models.LanguageModel.forward_many`),
    so a Ray backend scores them on all its workers.

    A list longer than the context is scored as the signal pass scores a text under the model's
    long-text policy (:func:`rotelab.core.signals.plan_long_texts`): truncated, or in overlapping
    windows whose new predictions are joined (its windows stay in its batch). A variant of a text
    then lines up token for token with the text's own signals.
    """
    pieces = []
    for b in batches:
        plans, _ = plan_long_texts([list(s) for s in b], [f"{label} {i}" for i in range(len(b))], lm.long_text, lm.max_length)
        pieces.append([(i, window, keep) for i, plan in enumerate(plans) for window, keep in plan])
    for j, lps in lm.forward_many("logp", [[w for _, w, _ in p] for p in pieces]):
        parts: list[list[np.ndarray]] = [[] for _ in batches[j]]
        for (i, _, keep), lp in zip(pieces[j], lps):
            parts[i].append(lp[-keep:] if keep < len(lp) else lp)
        yield j, [p[0] if len(p) == 1 else np.concatenate(p) for p in parts]


def logp_of_id_lists(lm: "LanguageModel", seqs: Sequence[Sequence[int]], *, batch_size: int = 64, progress: bool = False, label: str = "variants") -> list[np.ndarray]:
    """Per token-id list, its (T-1,) log-probs, in input order (length-sorted batches; see :func:`logp_many`)."""
    return checkpointed_map(None, seqs, folder=None, batch_size=batch_size, progress=progress, label=label, many=lambda bs: logp_many(lm, bs, label=label))  # type: ignore[arg-type]


@contextmanager
def run_cache(run: "RunFolder", cache: "SignalCache | None") -> Iterator["SignalCache"]:
    """The signal cache a run's signal passes use: the user's, or (``--no-cache``) one inside the
    run folder, so that an interrupted signal pass resumes per batch too."""
    if cache is not None:
        yield cache
        return
    from rotelab.core.cache import SignalCache

    local = SignalCache(run.file(PASSES))
    try:
        yield local
    finally:
        local.close()


def clear_passes(run: "RunFolder") -> None:
    """Drop the saved batches once the results they fed are written."""
    shutil.rmtree(run.file(PASSES), ignore_errors=True)
