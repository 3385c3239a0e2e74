"""What every Python API entry point does first: turn what a user passed into validated objects.

An entry point (``rotelab.mia``, ``rotelab.signals``, ...) takes paths or in-memory objects,
validates all of them, loads models, and only then opens its run folder::

    samples = as_samples(members, role="members")   # a JSONL path, Samples or plain strings
    lm = as_model(model, load)                      # a LanguageModel, or a folder opened with LoadOptions
    with open_run(out, "mia run", options, ...) as run: ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from rotelab.core.data import Sample, read_jsonl
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel, LoadOptions

DEFAULT_CACHE = object()
"""Sentinel: use the user-wide signal cache (``$ROTELAB_CACHE`` or the user cache folder)."""


def as_samples(data: Path | str | Sequence[Sample] | Sequence[str], *, role: str) -> list[Sample]:
    """Samples from a JSONL path, a list of :class:`Sample` or a list of strings (ids ``<role>:<i>``).

    >>> [s.id for s in as_samples(["a text", "another"], role="members")]
    ['members:0', 'members:1']
    """
    if isinstance(data, (str, Path)):
        return read_jsonl(data, role=role)
    items = list(data)
    if not items:
        raise RotelabError(f"{role}: no samples")
    if all(isinstance(x, Sample) for x in items):
        ids = [s.id for s in items]
        if len(set(ids)) < len(ids):
            raise RotelabError(f"{role}: duplicate sample ids")
        return items  # type: ignore[return-value]
    if all(isinstance(x, str) for x in items):
        for i, t in enumerate(items):
            if not t.strip():
                raise RotelabError(f"{role}: text {i} is empty")
        return [Sample(f"{role}:{i}", t) for i, t in enumerate(items)]  # type: ignore[arg-type]
    raise RotelabError(f"{role}: expected a JSONL path, Samples or strings")


def as_model(model: "LanguageModel | Path | str", load: "LoadOptions | None" = None) -> "LanguageModel":
    """A loaded model passes through; a folder is opened with ``load`` (default options)."""
    from rotelab.core.models import LanguageModel, LoadOptions

    if isinstance(model, LanguageModel):
        return model
    return (load or LoadOptions()).load(model)


def resolve_cache(cache: "SignalCache | None | object") -> "SignalCache | None":
    from rotelab.core.cache import SignalCache

    return SignalCache() if cache is DEFAULT_CACHE else cache  # type: ignore[return-value]


def samples_digest(samples: Sequence[Sample]) -> str:
    """SHA-256 of samples passed in memory (ids, texts, fields): their part of a run's identity,
    as a file's hash is for samples read from a path.

    >>> samples_digest([Sample("a", "x")]) == samples_digest([Sample("a", "x")]) != samples_digest([Sample("a", "y")])
    True
    """
    import hashlib
    import json

    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps([s.id, s.text, s.meta], sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def data_identity(name: str, data: object, samples: Sequence[Sample]) -> tuple[dict[str, Path | str], str]:
    """How one data argument enters a run's identity: a path is an input file (hashed by the run
    folder, see :func:`rotelab.core.runs.open_run`); samples in memory are an option value holding
    their :func:`samples_digest`. Returns (inputs, option value).

    >>> data_identity("data", "x.jsonl", [])
    ({'data': 'x.jsonl'}, 'x.jsonl')
    >>> data_identity("data", ["a"], [Sample("data:0", "a")])[1][:17]
    'in memory, sha256'
    """
    if isinstance(data, (str, Path)):
        return {name: data}, str(data)
    return {}, f"in memory, sha256 {samples_digest(samples)[:16]}"
