"""Per-token signals: everything the single-pass scores need, from one batched forward pass.

For each text x_1..x_T and each position t = 2..T (a token that has a prediction):

    logp_t   = log p(x_t | x_<t)
    mu_t     = sum_v p_t(v) log p_t(v)                  (= -entropy_t; Min-K%++'s mean)
    sigma_t  = sqrt(sum_v p_t(v) (log p_t(v))^2 - mu_t^2), clamped at sigma^2 >= 1e-6
    top1_t   = 1[x_t = argmax_v p_t(v)]                 (greedy hit; a tie for the top counts as a hit)

Full-vocabulary logits never leave the batch; where the model's head is a plain linear layer
they never exist for the whole batch either: the head is applied to the final hidden states a
few hundred positions at a time and each block reduced while in cache (:func:`signals_in_chunks`).
Signals are cached (see :mod:`rotelab.core.cache`),
so every score is a pure function of cached signals and a second run costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel
    from rotelab.core.runs import RunFolder

LONG_TEXT_POLICIES = ("truncate", "window", "error")


@dataclass(frozen=True)
class TokenSignals:
    """Signals of one text. ``token_ids`` has T entries; every other array T-1 (positions 2..T)."""

    token_ids: np.ndarray  # (T,) int64
    logp: np.ndarray  # (T-1,) float32
    mu: np.ndarray  # (T-1,) float32
    sigma: np.ndarray  # (T-1,) float32
    top1: np.ndarray  # (T-1,) bool: x_t is the model's most likely next token

    @property
    def entropy(self) -> np.ndarray:
        """H_t = -sum_v p_t(v) log p_t(v) = -mu_t."""
        return -self.mu

    @property
    def n_scored(self) -> int:
        return len(self.logp)

    @property
    def nll(self) -> float:
        """Mean negative log-likelihood over scored tokens."""
        return float(-self.logp.mean())

    def to_bytes(self) -> bytes:
        import io

        buf = io.BytesIO()
        np.savez(buf, token_ids=self.token_ids, logp=self.logp, mu=self.mu, sigma=self.sigma, top1=self.top1)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, b: bytes) -> "TokenSignals":
        import io

        z = np.load(io.BytesIO(b), allow_pickle=False)
        return cls(z["token_ids"], z["logp"], z["mu"], z["sigma"], z["top1"])

    @classmethod
    def concat(cls, first_ids: np.ndarray, parts: Sequence["TokenSignals"]) -> "TokenSignals":
        """Join the scored tails of several windows of one text (long-text policy ``window``)."""
        return cls(
            first_ids,
            np.concatenate([p.logp for p in parts]),
            np.concatenate([p.mu for p in parts]),
            np.concatenate([p.sigma for p in parts]),
            np.concatenate([p.top1 for p in parts]),
        )


def answer_start(full: list[int], prompt: list[int]) -> int:
    """Index of the first answer token of ``full`` (prompt + answer): the length of its longest
    common prefix with ``prompt`` alone, kept in [1, len(full) - 1] (at least one token before it, one scored).

    >>> answer_start([5, 6, 7, 8], [5, 6, 9]), answer_start([5, 6], [5, 6])
    (2, 1)
    """
    k = 0
    while k < min(len(full), len(prompt)) and full[k] == prompt[k]:
        k += 1
    return max(1, min(k, len(full) - 1))


def signals_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, *, overwrite: bool = False, scratch: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-token signals from next-token logits, in float32.

    Parameters
    ----------
    logits : (..., V) logits; position t predicts ``input_ids[..., t]`` (already aligned).
    input_ids : (...) the predicted tokens.
    overwrite : the (float32) logits may be overwritten, which saves a copy.
    scratch : float32 tensor of the logits' shape for the exponentials, reused across calls
        (:func:`signals_in_chunks`): a fresh block per call costs page faults.

    Returns dict of (...) tensors: logp, mu, sigma, top1.

    Notes
    -----
    Worked in base 2, where the exponential is half the cost on CPU (``exp2`` 0.5 ns vs ``exp``
    1.0 ns per logit, AVX2). With m = max z, y = (z - m) / ln 2 <= 0, e = 2^y, s = sum e:

        log p_t = (z_t - m) - ln2 log2 s
        mu      = ln2 (E_p[y] - log2 s),     sigma^2 = ln2^2 (E_p[y^2] - E_p[y]^2)

    Written by hand because no library returns these moments in few passes over the vocabulary:
    one exponential (log_softmax and then exp would be two), the shift and scale in one fused
    pass, the moments as in-place products and sums over e (``bmm`` of (1, V) x (V, 1) is 4x
    slower, ``vecdot`` no faster), and top1 by comparing the target's logit with the vectorised ``amax`` (on CPU
    ``argmax`` / ``max(dim)`` are scalar loops costing as much as the exponential).
    The variance is one-pass, E_p[y^2] - E_p[y]^2: its relative error is about 2e-7 E_p[y^2] / var,
    and E_p[y^2] / var stays below 10 on a trained LM's rows (measured on the testbed). Rows where
    it exceeds 100 (near-uniform rows of a large vocabulary) are recomputed two-pass.
    """
    z = logits.to(torch.float32, copy=not overwrite)  # worked on in place below
    m, zt, y, e, s, log2_s = _base2(z, input_ids, scratch)
    mean = e.mul_(y).sum(-1) / s  # E_p[y]
    if mean.isnan().any():  # -inf logits (masked tokens) give 0 * -inf; 2^-200 is also 0 in float32
        e = torch.exp2(y.nan_to_num_(nan=math.nan, neginf=-200.0))  # NaN logits stay NaN
        mean = e.mul_(y).sum(-1) / s
    sq = e.mul_(y).sum(-1) / s  # E_p[y^2]
    var = sq - mean * mean
    ill = var * 100 < sq  # cancellation could cost > 1e-5 of var: near-uniform rows only (never seen on a trained LM)
    if ill.any():
        yc = y[ill] - mean[ill, None]
        var[ill] = (torch.exp2(y[ill]) * yc * yc).sum(-1) / s[ill]  # two-pass, centred
    return {
        "logp": (zt - m) - _LN2 * log2_s,
        "mu": _LN2 * (mean - log2_s),
        "sigma": _LN2 * (var.clamp_min(1e-6 / _LN2**2)).sqrt(),  # sigma^2 >= 1e-6 in nats
        "top1": zt == m,
    }


def logp_from_logits(logits: torch.Tensor, input_ids: torch.Tensor, *, overwrite: bool = False, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x_t | x_<t) alone, (...): :func:`signals_from_logits` without the moments, at 2/3 of its cost.

    What REMIND's variants, the Neighbourhood attack and ReCaLL need.
    """
    z = logits.to(torch.float32, copy=not overwrite)
    m, zt, _, _, _, log2_s = _base2(z, input_ids, scratch)
    return (zt - m) - _LN2 * log2_s


def _base2(z: torch.Tensor, input_ids: torch.Tensor, scratch: torch.Tensor | None):
    """(m, z_t, y, e, s, log2 s) of :func:`signals_from_logits`; z is overwritten by y."""
    m = z.amax(-1, keepdim=True)
    zt = z.gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    y = torch.add(m * -_LOG2E, z, alpha=_LOG2E, out=z)  # (z - m) / ln 2, one pass
    e = torch.exp2(y, out=scratch) if scratch is not None else torch.exp2(y)
    s = e.sum(-1)
    return m.squeeze(-1), zt, y, e, s, s.log2()


_LN2 = math.log(2.0)
_LOG2E = 1.0 / _LN2


def chunk_rows(vocab_size: int, device: torch.device) -> int:
    """Rows per chunk: about 4 MiB of float32 logits on CPU (two such buffers stay in L3), 64 MiB on a GPU.

    Measured on the small testbed (V = 2048, one thread, forward + signals): 512 rows beat
    64 / 128 / 256 / 1024 by 1-8%.
    """
    budget = 2**24 if device.type == "cuda" else 2**20
    return max(32, budget // max(1, vocab_size))


def signals_in_chunks(
    rows: torch.Tensor, targets: torch.Tensor, head: torch.nn.Linear | None = None, *, chunk: int, moments: bool = True
) -> dict[str, torch.Tensor]:
    """:func:`signals_from_logits` over N predictions, ``chunk`` rows at a time.

    ``rows`` is (N, V) logits, or (N, d) final hidden states when ``head`` maps them to logits: then
    the (N, V) logits never exist at once and each (chunk, V) block is reduced while it is still in
    cache, in two buffers reused by every chunk. This is what keeps the signals close to the cost
    of the bare forward pass (issue 4: all single-pass attacks within 1.1x of it); the same fusion
    as Liger's fused linear cross-entropy, which only returns the loss, not the moments, hence
    written here. Returns dict of (N,) tensors: logp, mu, sigma, top1 (logp alone without ``moments``).
    """
    n, dev = len(rows), rows.device
    out = {k: torch.empty(n, device=dev) for k in (("logp", "mu", "sigma") if moments else ("logp",))}
    if moments:
        out["top1"] = torch.empty(n, dtype=torch.bool, device=dev)
    if n == 0:
        return out
    V = head.out_features if head is not None else rows.shape[-1]
    block = torch.empty(min(chunk, n), V, device=dev)  # float32 logits of one chunk, worked on in place
    scratch = torch.empty_like(block)  # their exponentials
    for c in range(0, n, chunk):
        x, z = rows[c : c + chunk], block[: min(chunk, n - c)]
        if head is None:
            z.copy_(x)
        elif head.weight.dtype == torch.float32:
            torch.matmul(x, head.weight.t(), out=z)
        else:
            z.copy_(torch.matmul(x, head.weight.t()))
        if head is not None and head.bias is not None:
            z += head.bias
        tgt, e = targets[c : c + chunk], scratch[: len(z)]
        if not moments:
            out["logp"][c : c + len(z)] = logp_from_logits(z, tgt, overwrite=True, scratch=e)
            continue
        for key, v in signals_from_logits(z, tgt, overwrite=True, scratch=e).items():
            out[key][c : c + len(z)] = v
    return out


@dataclass
class LongTextCounts:
    """How many texts exceeded the context and what the policy did; recorded in the manifest."""

    policy: str
    max_length: int
    n_texts: int = 0
    n_long: int = 0
    tokens_dropped: int = 0
    n_windows: int = 0
    long_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "policy": self.policy,
            "max_length": self.max_length,
            "n_texts": self.n_texts,
            "n_longer_than_context": self.n_long,
            "tokens_dropped": self.tokens_dropped,
            "n_windows": self.n_windows,
            "example_ids": self.long_ids[:10],
        }

    def message(self) -> str | None:
        if not self.n_long:
            return None
        what = {
            "truncate": f"truncated to {self.max_length} tokens ({self.tokens_dropped} tokens dropped)",
            "window": f"scored in {self.n_windows} overlapping windows of {self.max_length} tokens",
        }[self.policy]
        return f"{self.n_long} of {self.n_texts} texts are longer than the context and were {what}"


def _segments(ids: list[int], max_length: int) -> list[tuple[list[int], int]]:
    """Windows of at most ``max_length`` tokens, stride max_length // 2, covering every token.

    Returns (window ids, keep) pairs: ``keep`` = how many trailing predictions of the window are
    new (the first window keeps all of its T-1 predictions).
    """
    stride = max(1, max_length // 2)
    out = [(ids[:max_length], min(len(ids), max_length) - 1)]
    covered = min(len(ids), max_length)  # tokens whose prediction is already scored (plus token 1)
    start = stride
    while covered < len(ids):
        end = min(start + max_length, len(ids))
        out.append((ids[start:end], end - covered))
        covered = end
        start += stride
    return out


def refuse_long_texts(lm: "LanguageModel", samples: Sequence, *, where: str | None) -> None:
    """Under ``--long-text error``, refuse the first text longer than the context, in one line
    naming ``where`` (the option and file it came from) and the sample: the check every API runs
    before it opens its run folder (scoring would fail midway otherwise)."""
    if lm.long_text != "error":
        return
    for s, ids in zip(samples, lm.tokenize([s.text for s in samples])):
        if len(ids) > lm.max_length:
            prefix = f"{where}: " if where else ""
            raise RotelabError(f"{prefix}sample '{s.id}': {len(ids)} tokens > context {lm.max_length} (choose --long-text truncate or window)")


def record_long_text(run: "RunFolder", counts: LongTextCounts) -> None:
    """Record the long-text counts in the manifest and print them once (never silent)."""
    run.note("long_text", counts.as_dict(), say=counts.message())


def plan_long_texts(
    ids: list[list[int]], sample_ids: Sequence[str], policy: str, max_length: int
) -> tuple[list[list[tuple[list[int], int]]], LongTextCounts]:
    """Apply the long-text policy: per text, the list of (window, keep) pieces to score."""
    if policy not in LONG_TEXT_POLICIES:
        raise RotelabError(f"long-text policy must be one of {', '.join(LONG_TEXT_POLICIES)}; got '{policy}'")
    counts = LongTextCounts(policy, max_length, n_texts=len(ids))
    plans = []
    for sid, x in zip(sample_ids, ids):
        if len(x) < 2:
            raise RotelabError(f"sample '{sid}': needs at least 2 tokens to score, has {len(x)}")
        if len(x) <= max_length:
            plans.append([(x, len(x) - 1)])
            continue
        counts.n_long += 1
        counts.long_ids.append(sid)
        if policy == "error":
            raise RotelabError(
                f"sample '{sid}': {len(x)} tokens > context {max_length} (choose --long-text truncate or window)"
            )
        if policy == "truncate":
            counts.tokens_dropped += len(x) - max_length
            plans.append([(x[:max_length], max_length - 1)])
        else:
            segs = _segments(x, max_length)
            counts.n_windows += len(segs)
            plans.append(segs)
    return plans, counts


def iter_signals(
    lm: "LanguageModel",
    texts: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    batch_size: int = 32,
    cache: "SignalCache | None" = None,
    progress: bool = True,
    counts_out: list | None = None,
) -> Iterator[tuple[int, TokenSignals]]:
    """Yield (index, signals) for every text, streaming: memory O(batch) beyond the token ids.

    Texts are tokenized, split by the model's long-text policy, served from ``cache`` where
    possible, and the rest scored in length-sorted batches (minimal padding). Order of yield is
    the batch order, not the input order; :func:`compute_signals` restores input order.
    ``counts_out`` (a list) receives the :class:`LongTextCounts`.
    """
    from rotelab.core.console import progress as bar_

    sample_ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    token_ids = lm.tokenize(list(texts))
    plans, counts = plan_long_texts(token_ids, sample_ids, lm.long_text, lm.max_length)
    if counts_out is not None:
        counts_out.append(counts)

    todo: list[int] = []
    for i, text in enumerate(texts):
        hit = cache.get(lm, text) if cache is not None else None
        if hit is not None:
            yield i, hit
        else:
            todo.append(i)

    # Flatten pieces, sort by length (longest first: memory errors show up at once).
    pieces = [(i, k, plans[i][k]) for i in todo for k in range(len(plans[i]))]
    pieces.sort(key=lambda p: -len(p[2][0]))
    pending: dict[int, dict[int, TokenSignals]] = {}
    with bar_(disable=not progress) as bar:
        task = bar.add_task("signals", total=len(pieces))
        chunks = [pieces[b : b + batch_size] for b in range(0, len(pieces), batch_size)]
        for j, outs in lm.forward_many("signals", [[p[2][0] for p in c] for c in chunks]):
            chunk = chunks[j]
            done_now: list[int] = []
            for (i, k, (window, keep)), sig in zip(chunk, outs):
                if keep < sig.n_scored:  # later window: keep only the new predictions
                    sig = TokenSignals(sig.token_ids, sig.logp[-keep:], sig.mu[-keep:], sig.sigma[-keep:], sig.top1[-keep:])
                pending.setdefault(i, {})[k] = sig
                if len(pending[i]) == len(plans[i]):
                    done_now.append(i)
            finished = []
            for i in done_now:
                parts = pending.pop(i)
                if len(parts) == 1:
                    sig = parts[0]
                else:
                    sig = TokenSignals.concat(np.asarray(token_ids[i], dtype=np.int64), [parts[k] for k in sorted(parts)])
                finished.append((i, sig))
            if cache is not None and finished:
                cache.put_many(lm, [(texts[i], s) for i, s in finished])
            yield from finished
            bar.advance(task, len(chunk))


def compute_signals(
    lm: "LanguageModel",
    texts: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    batch_size: int = 32,
    cache: "SignalCache | None" = None,
    progress: bool = True,
    counts_out: list | None = None,
) -> list[TokenSignals]:
    """Signals for every text, in input order (see :func:`iter_signals`)."""
    out: list[TokenSignals | None] = [None] * len(texts)
    for i, sig in iter_signals(lm, texts, ids=ids, batch_size=batch_size, cache=cache, progress=progress, counts_out=counts_out):
        out[i] = sig
    return out  # type: ignore[return-value]
